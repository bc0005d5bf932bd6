"""`fn.export(directory, prefix)`: plain C99 that a C program builds with `cc` and `-lm` alone,
whose numbers are PyTorch's (and `fn.value_and_grad`'s), and two exports in one program."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

import symgrad as sg
from symgrad.build import c_compiler, have_c_compiler

pytestmark = pytest.mark.skipif(not have_c_compiler(), reason="no C compiler")

RNG = np.random.default_rng(3)
X = RNG.standard_normal((6, 4)).astype(np.float32)
Y = np.array([0, 2, 1, 1, 0, 2], np.int64)
W1 = (RNG.standard_normal((4, 5)) * 0.5).astype(np.float32)
B1 = (RNG.standard_normal(5) * 0.1).astype(np.float32)
W2 = (RNG.standard_normal((5, 3)) * 0.5).astype(np.float32)
SCALE = np.array([1.0, -0.5, 2.0], np.float32)      # a captured constant: embedded in the C file


def mlp(T, x, y, w1, b1, w2):
    """The case, written once for T = torch and T = symgrad."""
    h = T.tanh(x @ w1 + b1)
    logits = (h @ w2) * T.tensor(SCALE)
    return T.nn.functional.cross_entropy(logits, y) + (w2 * w2).sum() * 0.01


def torch_value_and_grad():
    params = [torch.tensor(a, requires_grad=True) for a in (W1, B1, W2)]
    loss = mlp(torch, torch.tensor(X), torch.tensor(Y), *params)
    loss.backward()
    return float(loss.detach()), [p.grad.numpy() for p in params]


def compiled(name="mlp"):
    x = sg.Variable(shape=X.shape, name="x")
    y = sg.Variable(shape=Y.shape, dtype="int64", name="labels")
    ps = [sg.Variable(shape=a.shape, name=n, requires_grad=True)
          for a, n in ((W1, "W1"), (B1, "b1"), (W2, "W2"))]
    loss = mlp(sg, x, y, *ps)
    loss.name = "loss"
    return sg.compile([x, y, *ps], loss)


@pytest.fixture(scope="module")
def fn():
    return compiled()


def _array(name, arr, ctype):
    flat = ", ".join(repr(float(v)) + "f" if ctype == "float" else str(int(v)) for v in arr.reshape(-1))
    return f"static {'const ' if ctype != 'float' else ''}{ctype} {name}[{arr.size}] = {{{flat}}};\n"


def _main(prefixes):
    """A C main calling <prefix>_value_and_grad of each export and printing every number."""
    text = "#include <stdio.h>\n#include <stdint.h>\n"
    text += "".join(f'#include "{p}.h"\n' for p in prefixes)
    text += _array("x", X, "float") + _array("labels", Y, "int64_t")
    text += _array("w1", W1, "float") + _array("b1", B1, "float") + _array("w2", W2, "float")
    text += "static void show(const char *what, const float *a, int n) {\n" \
            "    printf(\"%s\", what);\n    for (int i = 0; i < n; i++) printf(\" %.9g\", a[i]);\n" \
            "    printf(\"\\n\");\n}\n"
    text += "int main(void) {\n    float loss, dw1[20], db1[5], dw2[15];\n"
    for p in prefixes:
        text += (f"    if ({p}_value_and_grad(x, labels, w1, b1, w2, &loss, dw1, db1, dw2, NULL)) return 1;\n"
                 f'    show("{p}.loss", &loss, 1); show("{p}.dW1", dw1, 20);\n'
                 f'    show("{p}.db1", db1, 5); show("{p}.dW2", dw2, 15);\n')
    text += "    float out;\n"
    for p in prefixes:
        text += (f"    if ({p}_forward(x, labels, w1, b1, w2, &out, NULL)) return 1;\n"
                 f'    show("{p}.forward", &out, 1);\n')
    # a label out of range: status 2, not a wrong number
    text += "    static const int64_t bad[6] = {0, 2, 1, 7, 0, 2};\n"
    text += (f"    printf(\"bad_label_status %d\\n\", "
             f"{prefixes[0]}_forward(x, bad, w1, b1, w2, &out, NULL));\n")
    text += "    return 0;\n}\n"
    return text


def _build_and_run(tmp_path, prefixes, extra=()):
    (tmp_path / "main.c").write_text(_main(prefixes))
    cc = c_compiler()
    objects = []
    for p in prefixes:
        subprocess.run([cc, "-std=c99", "-O2", *extra, "-c", f"{p}.c", "-o", f"{p}.o"], cwd=tmp_path,
                       check=True, capture_output=True, timeout=120)
        objects.append(f"{p}.o")
    subprocess.run([cc, "-std=c99", "-O2", *extra, "main.c", *objects, "-o", "main", "-lm"], cwd=tmp_path,
                   check=True, capture_output=True, timeout=120)
    done = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    out = {}
    for line in done.stdout.splitlines():
        what, *numbers = line.split()
        out[what] = np.array([float(v) for v in numbers])
    return out


def _check(out, prefix, value, grads, rtol):
    np.testing.assert_allclose(out[f"{prefix}.loss"], [value], rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(out[f"{prefix}.forward"], [value], rtol=rtol, atol=1e-6)
    for name, g in zip(("dW1", "db1", "dW2"), grads):
        np.testing.assert_allclose(out[f"{prefix}.{name}"], np.asarray(g).reshape(-1), rtol=rtol, atol=1e-6)


def test_exported_value_and_grad_prints_pytorchs_numbers_and_value_and_grads(fn, tmp_path):
    written = fn.export(tmp_path, prefix="mlp")
    assert written["entries"] == ["mlp_forward", "mlp_backward", "mlp_value_and_grad"]
    header = (tmp_path / "mlp.h").read_text()
    for text in ("int mlp_value_and_grad(const float *x, const int64_t *labels, const float *W1",
                 "float *loss, float *dW1, float *db1, float *dW2, void *workspace);",
                 "labels", "int64", "[6][4]", "output", "mlp_forward_workspace_bytes"):
        assert text in header, text
    assert "cc -O2 -c mlp.c" in (tmp_path / "README").read_text()
    source = (tmp_path / "mlp.c").read_text()
    assert "Python.h" not in source and "cffi" not in source
    out = _build_and_run(tmp_path, ["mlp"])
    value, grads = torch_value_and_grad()
    _check(out, "mlp", value, grads, 2e-5)
    ours_value, ours_grads = fn.value_and_grad(X, Y, W1, B1, W2)
    _check(out, "mlp", float(ours_value), ours_grads, 1e-6)
    assert out["bad_label_status"].tolist() == [2.0]


def test_the_export_needs_only_libm_and_the_c_library(fn, tmp_path):
    fn.export(tmp_path, prefix="lone")
    subprocess.run([c_compiler(), "-std=c99", "-O2", "-c", "lone.c"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    nm = subprocess.run(["nm", "lone.o"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    undefined = {line.split()[-1] for line in nm.splitlines() if line.split()[0] == "U"}
    assert undefined <= {"malloc", "free", "calloc", "memset", "memcpy", "expf", "logf", "tanhf", "exp",
                         "log", "tanh", "fmaxf", "fabsf"}, undefined
    defined = [line.split()[-1] for line in nm.splitlines()
               if len(line.split()) == 3 and line.split()[1] in "TDRB"]
    assert defined and all(name.startswith("lone_") for name in defined), defined


def test_two_exports_link_into_one_program_with_openmp(tmp_path):
    first, second = compiled(), compiled()
    first.export(tmp_path, prefix="first")
    second.export(tmp_path, prefix="second")
    out = _build_and_run(tmp_path, ["first", "second"], extra=("-fopenmp",))
    value, grads = torch_value_and_grad()
    _check(out, "first", value, grads, 2e-5)
    _check(out, "second", value, grads, 2e-5)


@pytest.mark.parametrize("prefix", ["", "9lives", "a-b", "sg_x", None])
def test_a_prefix_that_is_not_a_c_name_is_refused(fn, tmp_path, prefix):
    with pytest.raises(ValueError, match="prefix"):
        fn.export(tmp_path, prefix=prefix)


def test_the_example_trains_the_exported_mlp_from_c(tmp_path):
    import os
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    done = subprocess.run([sys.executable, os.path.join(root, "examples", "export_mlp.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    first, last = (float(v) for v in done.stdout.splitlines()[-1].split()[1::2])
    assert last < first * 0.1


def test_blas_true_calls_cblas_and_blas_false_does_not(tmp_path):
    a = sg.Variable(shape=(128, 256), name="a")
    b = sg.Variable(shape=(256, 128), name="b", requires_grad=True)
    fn = sg.compile([a, b], (a @ b).sum())         # large enough for BLAS
    for blas, prefix in ((True, "withblas"), (False, "noblas")):
        fn.export(tmp_path, prefix=prefix, blas=blas)
        subprocess.run([c_compiler(), "-std=c99", "-O2", "-c", f"{prefix}.c"], cwd=tmp_path, check=True,
                       capture_output=True, timeout=120)
        nm = subprocess.run(["nm", f"{prefix}.o"], cwd=tmp_path, capture_output=True, text=True).stdout
        assert ("cblas_sgemm" in nm) == blas, nm


_HVP_MAIN = """
#include <stdio.h>
#include "hvp.h"
int main(void) {
    const float x[4] = {0.5f, -1.0f, 2.0f, 0.25f}, v[4] = {1.0f, 0.5f, -2.0f, 3.0f};
    float hv, dx[4];
    if (hvp_value_and_grad(x, v, &hv, dx, NULL)) return 1;
    printf("%.9g", hv);
    for (int i = 0; i < 4; i++) printf(" %.9g", dx[i]);
    printf("\\n");
    return 0;
}
"""


def test_a_second_derivative_exports(tmp_path):
    """A Hessian-vector product (sg.grad twice) and its gradient, from C, against PyTorch's."""
    xv = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    vv = np.array([1.0, 0.5, -2.0, 3.0], np.float32)

    def hvp(T, grad, x, v):
        (g,) = grad((T.tanh(x) ** 3).sum(), x)
        return (g * v).sum()

    x = sg.Variable(shape=(4,), name="x", requires_grad=True)
    v = sg.Variable(shape=(4,), name="v")
    sg.compile([x, v], hvp(sg, lambda f, w: sg.grad(f, w), x, v), wrt=[x]).export(tmp_path, prefix="hvp")
    (tmp_path / "main.c").write_text(_HVP_MAIN)
    cc = c_compiler()
    subprocess.run([cc, "-std=c99", "-O2", "main.c", "hvp.c", "-o", "main", "-lm"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    got = [float(t) for t in subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True,
                                            check=True, timeout=60).stdout.split()]
    xt = torch.tensor(xv, requires_grad=True)
    out = hvp(torch, lambda f, w: torch.autograd.grad(f, w, create_graph=True), xt, torch.tensor(vv))
    (dx,) = torch.autograd.grad(out, xt)
    np.testing.assert_allclose(got, [float(out.detach())] + dx.tolist(), rtol=1e-5, atol=1e-6)
