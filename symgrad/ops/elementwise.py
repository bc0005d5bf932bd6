"""Elementwise primitives. Inputs of one op share a dtype (the front end casts) and
broadcast as numpy does; a pullback sums its cotangent back to each input's shape."""
from __future__ import annotations

import math

import numpy as np

import symgrad.ops.builders as G
from symgrad import dtypes
from symgrad.ops.registry import Op, register


def broadcast_shapes(name, *shapes):
    widest = max(shapes, key=len)
    if all(s == widest or not s for s in shapes):      # equal shapes, and scalars: nothing to check
        return tuple(widest)
    ndim = len(widest)
    out = []
    for axis in range(-ndim, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            raise ValueError(f"{name}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be "
                             f"broadcast together (dimension {axis} has sizes {sorted(sizes)})")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _infer_same(name, bool_out=False, no_bool="", float_only=False):
    def infer(*xs):
        dts = {x.dtype for x in xs}
        if len(dts) > 1:
            raise TypeError(f"{name}: inputs must share a dtype, got {', '.join(map(str, dts))}")
        if float_only and not dtypes.is_float(xs[0].dtype):
            raise TypeError(f"{name}: the primitive takes floats, got {xs[0].dtype} (sg.{name} casts "
                            f"integers to float32 first)")
        if no_bool and xs[0].dtype == dtypes.bool_:
            raise TypeError(f"{no_bool} of bool Variables is not supported (as in PyTorch and numpy); "
                            f"use logical operations (~, ^) or convert with .int() / .float() first")
        shape = broadcast_shapes(name, *(x.shape for x in xs))
        return shape, (dtypes.bool_ if bool_out else xs[0].dtype)
    return infer


def _elementwise(name, impl, vjp=None, *, c, arity, libm=(), grad_name="", bool_out=False, no_bool="",
                infer=None, public="", doc="", attrs=()):
    """Register an elementwise op. Its dtype rule is `infer`, or by default: operands share a
    dtype and broadcast; the result has their dtype (bool with `bool_out`); bool operands are
    refused when `no_bool` names the operation, and non-float ones when the public function
    makes floats (public="float"), except for div, whose integer form floors."""
    float_only = public == "float" and name != "div"
    register(Op(name, "elementwise", infer or _infer_same(name, bool_out, no_bool, float_only), impl, vjp,
                grad_name, attrs=attrs, c=c, libm=libm, arity=arity, public=public, doc=doc))


# --- unary -----------------------------------------------------------------------------
# Each entry: numpy rule, pullback `(g, y, x) -> cotangent of x` (y is the op's result), and
# the C expression of its operand `a`.

def _unary(name, impl, vjp, c, libm=(), grad_name="", no_bool="", public="promote", doc=""):
    _elementwise(name, impl, (lambda g, node, needs: (vjp(g, node, node.inputs[0]),)) if vjp else None,
                 c=c, arity=1, libm=libm, grad_name=grad_name, no_bool=no_bool, public=public, doc=doc)


def _libm_call(name):
    """The C expression of an op that is one libm function of its operand."""
    return "{{ libm.%s }}({{ a }})" % name


_unary("neg", np.negative, lambda g, y, x: G.neg(g), "(-{{ a }})", no_bool="negation",
       doc="The negation -x, elementwise.")
_unary("exp", np.exp, lambda g, y, x: G.mul(g, y), _libm_call("exp"), ("exp",), public="float",
       doc="e ** x, elementwise.")
_unary("log", np.log, lambda g, y, x: G.div(g, x), _libm_call("log"), ("log",), public="float",
       doc="The natural logarithm, elementwise.")
_unary("sqrt", np.sqrt, lambda g, y, x: G.div(G.mul(g, 0.5), y), _libm_call("sqrt"), ("sqrt",),
       public="float", doc="The square root, elementwise.")


def _step_sign(x):
    """(x > 0) - (x < 0) in x's dtype: 0 at +-0 and at NaN, as PyTorch's sign."""
    return G.sub(G.cast(G.gt(x, 0), x.dtype), G.cast(G.lt(x, 0), x.dtype))


# abs' is +1 above zero, -1 below and 0 at zero and at NaN (PyTorch's sgn(x), written without
# sign so that NaN gives 0 rather than NaN).
_unary("abs", np.abs, lambda g, y, x: G.mul(g, _step_sign(x)),
       "{% if is_float %}{{ libm.fabs }}({{ a }}){% elif ct == 'uint8_t' %}{{ a }}"
       "{% else %}({{ a }} < 0 ? -{{ a }} : {{ a }}){% endif %}", ("fabs",),
       doc="The absolute value |x|, elementwise.")


def _sign(x):
    return ((x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)).astype(x.dtype)


def _zero_cotangent(g):
    """The zero gradient of a step function (floor, sign): zeros even where g is inf or NaN."""
    return G.zeros(g)


# sign is 0 at -0.0 and at NaN, as PyTorch's.
_unary("sign", _sign, lambda g, y, x: _zero_cotangent(g), "({{ ct }})(({{ a }} > 0) - ({{ a }} < 0))",
       no_bool="sign", doc="-1, 0 or 1 by the sign of x (0 at NaN), elementwise.")
_unary("floor", lambda x: np.floor(x) if x.dtype.kind == "f" else x, lambda g, y, x: _zero_cotangent(g),
       "{% if is_float %}{{ libm.floor }}({{ a }}){% else %}{{ a }}{% endif %}", ("floor",),
       no_bool="floor", doc="The largest integer not above x, elementwise.")
_unary("ceil", lambda x: np.ceil(x) if x.dtype.kind == "f" else x, lambda g, y, x: _zero_cotangent(g),
       "{% if is_float %}{{ libm.ceil }}({{ a }}){% else %}{{ a }}{% endif %}", ("ceil",),
       no_bool="ceil", doc="The smallest integer not below x, elementwise.")
_unary("sin", np.sin, lambda g, y, x: G.mul(g, G.cos(x)), _libm_call("sin"), ("sin",), public="float",
       doc="The sine, elementwise.")
_unary("cos", np.cos, lambda g, y, x: G.neg(G.mul(g, G.sin(x))), _libm_call("cos"), ("cos",),
       public="float", doc="The cosine, elementwise.")
_unary("tanh", np.tanh, lambda g, y, x: G.mul(g, G.sub(1.0, G.mul(y, y))), _libm_call("tanh"), ("tanh",),
       public="float", doc="The hyperbolic tangent, elementwise.")


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


_unary("sigmoid", _sigmoid, lambda g, y, x: G.mul(g, G.mul(y, G.sub(1.0, y))),
       "(({{ ct }})1 / (({{ ct }})1 + {{ libm.exp }}(-{{ a }})))", ("exp",), public="float",
       doc="1 / (1 + exp(-x)), elementwise.")


def _softplus(x):
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)); NaN stays NaN."""
    with np.errstate(over="ignore"):
        return (np.where(x > 0, x, np.zeros((), x.dtype)) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


# Its pullback is exactly sigmoid: the losses on logits get PyTorch's sigmoid(x) - t. In C, a
# comparison rather than fmax (which would turn NaN into 0).
_unary("softplus", _softplus, lambda g, y, x: G.mul(g, G.sigmoid(x)),
       "(({{ a }} > 0 ? {{ a }} : ({{ ct }})0) + "
       "{{ libm.log1p }}({{ libm.exp }}(-{{ libm.fabs }}({{ a }}))))",
       ("log1p", "exp", "fabs"), public="float",
       doc="log(1 + exp(x)), computed stably; its derivative is sigmoid(x).")


def _softsign_vjp(g, y, x):
    """softsign'(x) = 1 / (1 + |x|)**2."""
    d = G.add(1.0, G.abs(x))
    return G.div(g, G.mul(d, d))


_unary("softsign", lambda x: x / (1 + np.abs(x)), _softsign_vjp,
       "({{ a }} / (({{ ct }})1 + {{ libm.fabs }}({{ a }})))", ("fabs",), public="float",
       doc="x / (1 + |x|), elementwise.")

def _erf(x):
    """The error function with C's own erf (math.erf calls libm's), so that the interpreter's
    float64 values are the compiled code's bit for bit; float32 rounds the double result."""
    if x.size == 0:
        return x.copy()
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _erf_vjp(g, y, x):
    """erf'(x) = 2 / sqrt(pi) * exp(-x**2)."""
    return G.mul(g, G.mul(2.0 / math.sqrt(math.pi), G.exp(G.neg(G.mul(x, x)))))


# Not in libmvec: a scalar call per element, the same function the interpreter calls.
_unary("erf", _erf, _erf_vjp, _libm_call("erf"), ("erf",), public="float",
       doc="The Gauss error function, elementwise.")

# relu keeps -0.0 and NaN (as PyTorch and the C `a < 0 ? 0 : a`); its gradient is cut only where
# x <= 0, so it passes at NaN and is 0 at 0, as PyTorch's threshold_backward.
_unary("relu", lambda x: np.where(x < 0, np.zeros((), x.dtype), x),
       lambda g, y, x: G.where(G.le(x, 0), G.zeros(g), g), "({{ a }} < 0 ? ({{ ct }})0 : {{ a }})",
       doc="max(x, 0), elementwise (-0.0 and NaN pass through).")

# Identity with no pullback: how `detach` and stop-gradient tricks appear in a graph.
_elementwise("stop_gradient", lambda x: x, None, c="{{ a }}", arity=1, grad_name="StopGradient",
             infer=lambda x: (x.shape, x.dtype))


def _cast_vjp(g, node, needs):
    x = node.inputs[0]
    return (G.cast(g, x.dtype) if dtypes.is_float(x.dtype) else None,)


# To bool, any nonzero value is true (never a byte of 2 in a bool array).
_elementwise("cast", lambda x, dtype: x.astype(dtype), _cast_vjp, arity=1, grad_name="ToCopy",
             infer=lambda x, dtype: (x.shape, dtypes.as_dtype(dtype)), attrs=("dtype",),
             c="{% if ct == 'uint8_t' %}(uint8_t)({{ a }} != 0){% else %}({{ ct }})({{ a }}){% endif %}")


# --- binary ----------------------------------------------------------------------------

# Each entry: numpy rule, the pullbacks `(g, y, a, b) -> cotangent` of a and of b (summed back
# to the operand's shape where it was broadcast), and the C expression of operands `a`, `b`.

def _binary(name, impl, vjp_a, vjp_b, c, libm=(), grad_name="", no_bool="", infer=None, public="",
            doc=""):
    def vjp(g, node, needs):
        a, b = node.inputs
        return (G.sum_to(vjp_a(g, node, a, b), a.shape) if needs[0] else None,
                G.sum_to(vjp_b(g, node, a, b), b.shape) if needs[1] else None)
    _elementwise(name, impl, vjp, c=c, arity=2, libm=libm, grad_name=grad_name, no_bool=no_bool,
                 infer=infer, public=public, doc=doc)


def _true_divide(a, b):
    # integers: x // 0 is 0 and INT_MIN // -1 wraps to INT_MIN (numpy's results, no warning);
    # bools divide as 0 and 1 and stay bool (numpy would make int8)
    with np.errstate(all="ignore"):
        return np.true_divide(a, b) if a.dtype.kind == "f" else np.floor_divide(a, b).astype(a.dtype)


def _remainder(a, b):
    """PyTorch's remainder: the result has the divisor's sign. Floats: fmod, then shifted by b
    where the signs differ (x % 0 is NaN); integers: numpy's (x % 0 == 0, INT_MIN % -1 == 0)."""
    with np.errstate(all="ignore"):
        if a.dtype.kind != "f":
            return np.remainder(a, b)
        m = np.fmod(a, b)
        return np.where((m != 0) & ((b < 0) != (m < 0)), m + b, m)


def _fmod(a, b):
    """C's fmod: the result has the dividend's sign. Integers: x fmod 0 is 0 (numpy's), and
    INT_MIN fmod -1 is 0."""
    with np.errstate(all="ignore"):
        return np.fmod(a, b)


def floor_divide(a, b):
    """a // b for floats as PyTorch computes it (its div_floor, which the gradient of remainder
    uses): the quotient through fmod, so exact near integers; x // 0 is a / b, inf // x is NaN.
    A graph of primitives, constant for gradients; for integers the `div` op already floors."""
    dt = a.dtype
    m = G.fmod(a, b)
    # fmod has the dividend's sign; where it differs from the divisor's, the quotient drops by 1
    shifted = G.where(G.ne(m, 0), G.ne(G.lt(b, 0), G.lt(m, 0)), False)
    q = G.sub(G.div(G.sub(a, m), b), G.cast(shifted, dt))
    fl = G.floor(q)
    rounded = G.add(fl, G.cast(G.gt(G.sub(q, fl), 0.5), dt))
    # a zero quotient takes the sign of a / b (PyTorch's copysign(0, a / b)): -0.0 // 2 is -0.0
    rounded = G.where(G.eq(q, 0), G.mul(G.div(a, b), 0), rounded)
    return G.stop_gradient(G.where(G.eq(b, 0), G.div(a, b), rounded))


def _trunc(x):
    """Rounding toward zero (-0.5 becomes -0.0), constant for gradients."""
    return G.stop_gradient(G.where(G.lt(x, 0), G.neg(G.floor(G.neg(x))), G.floor(x)))


def _power(a, b):
    with np.errstate(all="ignore"):
        if a.dtype.kind != "f":
            return _integer_power(a, b)
        out = np.power(a, b)
        # small integer powers are products, as PyTorch's (and the C below): x**3 is (x*x)*x
        for n, f in _PRODUCT_POWERS:
            hit = b == n
            if np.any(hit):
                out = np.where(hit, f(a), out).astype(out.dtype)
        # numpy takes sqrt for some exponents of 0.5 and not others (it depends on the layout):
        # always IEEE pow, as C's pow: pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf.
        fix = (b == 0.5) & ((a == 0) | (a == -np.inf))
        return np.where(fix, np.abs(a), out) if np.any(fix) else out


_PRODUCT_POWERS = ((2, lambda a: a * a), (3, lambda a: a * a * a), (-1, lambda a: 1 / a),
                   (-2, lambda a: 1 / (a * a)))


def _integer_power(a, b):
    """Integer powers wrap on overflow. A negative exponent gives what PyTorch's gives: 1 for a
    base of 1, +-1 for -1, else 0 (a negative exponent written as a number is refused by the
    dtype rule, as PyTorch refuses it). Bools are 0 and 1 and stay bool (numpy would make int8)."""
    neg = b < 0
    out = np.power(a, np.where(neg, np.zeros((), b.dtype), b)).astype(a.dtype)
    if not np.any(neg):
        return out
    odd = (b % 2) != 0
    small = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(out.dtype)
    return np.where(neg, small, out)


def _pow_infer(a, b):
    shape, dtype = _infer_same("pow")(a, b)
    if dtype.kind in "iu" and getattr(b, "_literal", False) and b.value() < 0:
        raise RuntimeError(f"pow: Integers to negative integer powers are not allowed (a {dtype} "
                           f"base of shape {tuple(a.shape)} to the power {b.value()}); make the base "
                           f"a float first, e.g. x.float() ** {b.value()}")
    return shape, dtype


def _tie_mask(a, b, loses):
    """0 where `a` loses to `b`, 1/2 where they tie, else 1 (also where either is NaN, so that
    a NaN's cotangent passes to both operands): PyTorch's maximum and minimum backward."""
    dt = a.dtype
    return G.sub(G.sub(1.0, G.cast(loses(a, b), dt)), G.mul(G.cast(G.eq(a, b), dt), 0.5))


def _pow_base(g, y, a, b):
    """b * a**(b-1), but 0 where b == 0 (x**0 has gradient 0 even at x = 0, as PyTorch)."""
    d = G.mul(g, G.mul(b, G.pow(a, G.sub(b, 1.0))))
    return G.where(G.eq(b, 0), 0, d)


def _pow_exponent(g, y, a, b):
    """a**b * log(a), but 0 where a == 0 and b >= 0 (PyTorch's mask: 0**b is flat there)."""
    d = G.mul(g, G.mul(y, G.log(a)))
    return G.where(G.eq(a, 0), G.where(G.ge(b, 0), 0, d), d)


_binary("add", np.add, lambda g, y, a, b: g, lambda g, y, a, b: g,
        # on bool, + is logical or (numpy's and PyTorch's): never a byte of 2 in a bool array
        "{% if ct == 'uint8_t' %}(uint8_t)({{ a }} || {{ b }}){% else %}({{ a }} + {{ b }}){% endif %}")
_binary("sub", np.subtract, lambda g, y, a, b: g, lambda g, y, a, b: G.neg(g), "({{ a }} - {{ b }})",
        no_bool="subtraction")
_binary("mul", np.multiply, lambda g, y, a, b: G.mul(g, b), lambda g, y, a, b: G.mul(g, a),
        "({{ a }} * {{ b }})", public="promote", doc="a * b, elementwise, broadcasting.")
_binary("div", _true_divide, lambda g, y, a, b: G.div(g, b), lambda g, y, a, b: G.neg(G.div(G.mul(g, y), b)),
        "{% if is_float %}({{ a }} / {{ b }}){% else %}sg_floordiv_{{ ct }}({{ a }}, {{ b }}){% endif %}",
        public="float", doc="a / b, elementwise, broadcasting (true division).")
# Exponents 2, 3, -1 and -2 are products and quotients (PyTorch's too; a literal one leaves no
# branch and no libm call). GCC's vectoriser turns pow(x, 0.5) with a literal 0.5 into sqrt (and
# only in the vector part of a loop), which differs from pow at -0.0 and -inf: that exponent is
# written out exactly.
_binary("pow", _power, _pow_base, _pow_exponent,
        "{% if is_float and b in ('0.5', '0.5f') %}"
        "({{ a }} == -INFINITY ? INFINITY : {{ libm.sqrt }}({{ a }} + ({{ ct }})0))"
        "{% elif is_float %}{% set e = b[:-1] if b.endswith('f') else b %}"
        "{% if e == '2.0' %}({{ a }} * {{ a }}){% elif e == '3.0' %}({{ a }} * {{ a }} * {{ a }})"
        "{% elif e == '-1.0' %}(({{ ct }})1 / {{ a }})"
        "{% elif e == '-2.0' %}(({{ ct }})1 / ({{ a }} * {{ a }}))"
        "{% elif e[:1] in '-.0123456789' %}{{ libm.pow }}({{ a }}, {{ b }})"
        "{% else %}({{ b }} == 2 ? {{ a }} * {{ a }} : {{ b }} == 3 ? {{ a }} * {{ a }} * {{ a }}"
        " : {{ b }} == -1 ? ({{ ct }})1 / {{ a }} : {{ b }} == -2 ? ({{ ct }})1 / ({{ a }} * {{ a }})"
        " : {{ libm.pow }}({{ a }}, {{ b }})){% endif %}"
        "{% else %}({{ ct }})sg_ipow((int64_t)({{ a }}), (int64_t)({{ b }})){% endif %}",
        ("pow", "sqrt"), infer=_pow_infer)
# d/da = 1, d/db = -(a // b) and -trunc(a / b), as PyTorch's remainder and fmod.
# remainder has the divisor's sign (PyTorch's). Floats: fmod shifted by b where the signs differ
# (the compiler computes fmod once: no errno). Integers: numpy's x % 0 == 0, and x % -1 == 0
# without dividing (INT_MIN % -1 traps on x86).
_binary("remainder", _remainder, lambda g, y, a, b: g, lambda g, y, a, b: G.neg(G.mul(g, floor_divide(a, b))),
        "{% if is_float %}{% set m = libm.fmod ~ '(' ~ a ~ ', ' ~ b ~ ')' %}"
        "(({{ m }} != 0 && (({{ b }} < 0) != ({{ m }} < 0))) ? {{ m }} + {{ b }} : {{ m }})"
        "{% else %}(({{ b }} == 0 || {{ b }} == -1) ? ({{ ct }})0 : ({{ a }} % {{ b }} != 0 && "
        "(({{ a }} % {{ b }} < 0) != ({{ b }} < 0))) ? ({{ ct }})({{ a }} % {{ b }} + {{ b }}) : "
        "({{ ct }})({{ a }} % {{ b }})){% endif %}", ("fmod",), no_bool="remainder")
# C's fmod (the dividend's sign); integers as numpy: x fmod 0 and x fmod -1 are 0.
_binary("fmod", _fmod, lambda g, y, a, b: g, lambda g, y, a, b: G.neg(G.mul(g, _trunc(G.div(a, b)))),
        "{% if is_float %}{{ libm.fmod }}({{ a }}, {{ b }}){% else %}(({{ b }} == 0 || {{ b }} == -1) ? "
        "({{ ct }})0 : ({{ ct }})({{ a }} % {{ b }})){% endif %}", ("fmod",), no_bool="fmod")
# NaN propagates through maximum and minimum, as in numpy.
_binary("maximum", np.maximum, lambda g, y, a, b: G.mul(g, _tie_mask(a, b, G.lt)),
        lambda g, y, a, b: G.mul(g, _tie_mask(b, a, G.lt)),
        "(({{ a }} > {{ b }} || {{ a }} != {{ a }}) ? {{ a }} : {{ b }})", public="promote",
        doc="The larger of a and b (NaN if either is), elementwise, broadcasting.")
_binary("minimum", np.minimum, lambda g, y, a, b: G.mul(g, _tie_mask(a, b, G.gt)),
        lambda g, y, a, b: G.mul(g, _tie_mask(b, a, G.gt)),
        "(({{ a }} < {{ b }} || {{ a }} != {{ a }}) ? {{ a }} : {{ b }})", public="promote",
        doc="The smaller of a and b (NaN if either is), elementwise, broadcasting.")

for _name, _impl, _c_op, _doc in [("lt", np.less, "<", "a < b"), ("le", np.less_equal, "<=", "a <= b"),
                                  ("gt", np.greater, ">", "a > b"), ("ge", np.greater_equal, ">=", "a >= b"),
                                  ("eq", np.equal, "==", "a == b"), ("ne", np.not_equal, "!=", "a != b")]:
    _elementwise(_name, _impl, None, c="(uint8_t)({{ a }} %s {{ b }})" % _c_op, arity=2, bool_out=True,
                 public="promote", doc=f"{_doc}, elementwise, broadcasting (a bool Variable).")


# --- where -----------------------------------------------------------------------------

def _where_infer(cond, a, b):
    if cond.dtype != dtypes.bool_:
        raise TypeError(f"where: condition must be bool, got {cond.dtype}")
    if a.dtype != b.dtype:
        raise TypeError(f"where: branches must share a dtype, got {a.dtype} and {b.dtype}")
    return broadcast_shapes("where", cond.shape, a.shape, b.shape), a.dtype


def _where_vjp(g, node, needs):
    cond, a, b = node.inputs
    return (None,
            G.sum_to(G.where(cond, g, 0), a.shape) if needs[1] else None,
            G.sum_to(G.where(cond, 0, g), b.shape) if needs[2] else None)


# The condition is operand `a` of the C expression, the branches `b` and `c`.
_elementwise("where", np.where, _where_vjp, c="({{ a }} ? {{ b }} : {{ c }})", arity=3, grad_name="Where",
             infer=_where_infer)


# --- checks ------------------------------------------------------------------------------

def _check_range_infer(x, lo, hi, what):
    if x.dtype.kind not in "iu":
        raise TypeError(f"check_range: needs integers, got {x.dtype}")
    return x.shape, x.dtype


def _check_range_impl(x, lo, hi, what):
    bad = (x < lo) | (x >= hi)
    if np.any(bad):
        raise IndexError(f"{what} must lie in [{lo}, {hi}), got {x[bad].reshape(-1)[0]}")
    return x


# Identity on integers that lie in [lo, hi); anything else is an error, raised by the
# interpreter and reported by the generated code (which cannot prove its inputs in range).
# SG_CHECK_FAILED() is defined by each module template: it records the failure for Python; the
# value goes on as `lo`, so nothing downstream can read out of bounds.
_elementwise("check_range", _check_range_impl, None, arity=1, grad_name="CheckRange",
             infer=_check_range_infer, attrs=("lo", "hi", "what"),
             c="(({{ a }} >= {{ lo }} && {{ a }} < {{ hi }}) ? {{ a }} "
               ": (SG_CHECK_FAILED(), ({{ ct }}){{ lo }}))")
