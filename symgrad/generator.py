"""Random numbers as PyTorch's CPU generator draws them, so that a program seeded with
`manual_seed` prints the numbers PyTorch prints.

PyTorch's CPU generator is a 32-bit Mersenne Twister (MT19937) seeded with the low 32 bits
of the seed by the reference initialisation; numpy's MT19937 bit generator with its legacy
seeding is the same engine, so its raw 32-bit outputs are PyTorch's. On top of that stream
this module rebuilds PyTorch's distributions (read from its behaviour, checked against torch
2.13 in tests/test_api_random.py):

- uniform, float32: 24 random bits of one 32-bit draw, `bits * 2**-24`, then `x * (to - from) + from`
  in float32; float64: 53 bits of a 64-bit draw (two 32-bit draws, the first the high word).
- normal, 16 or more contiguous elements: uniform [0, 1) numbers for all of them first, then
  Box-Muller on each block of 16 (element j and j + 8 make a pair; a tail shorter than 16
  redraws 16 uniforms for the last 16 elements); fewer than 16: one float64 Box-Muller pair per
  two elements, the second kept for the next draw (across calls, as PyTorch's generator does).
- integers in [low, high): one 32-bit draw modulo the range (a 64-bit draw when the range is 2**32
  or more); a permutation: PyTorch's Fisher-Yates from the front.

float32 normals of 16 or more elements take PyTorch's AVX2 kernel's float32 log and sincos
(`_log32`, `_sincos32`), so they too are PyTorch's to the bit on an x86-64 build."""
from __future__ import annotations

import math
import os

import numpy as np

from symgrad.rounding import fma

_MASK24, _MASK53 = np.uint64((1 << 24) - 1), np.uint64((1 << 53) - 1)
_DEFAULT_SEED = 67280421310721          # PyTorch's default_rng_seed_val


class Generator:
    """A random number generator with PyTorch's `torch.Generator` interface (`manual_seed`,
    `seed`, `initial_seed`, `get_state`, `set_state`), drawing PyTorch's CPU numbers."""

    def __init__(self, device: object = "cpu") -> None:
        from symgrad import devices
        self.device = devices.device(device)
        self._bits = np.random.MT19937()
        self.manual_seed(_DEFAULT_SEED)

    def manual_seed(self, seed: int) -> "Generator":
        """Seed the generator (PyTorch: `Generator.manual_seed`); returns it."""
        seed = int(seed)
        if seed < 0:                      # PyTorch takes negative seeds as their 64-bit pattern
            seed += 1 << 64
        self._seed = seed
        self._bits._legacy_seeding(seed & 0xFFFFFFFF)
        self._normal = None               # the second half of a float64 Box-Muller pair
        return self

    def seed(self) -> int:
        """Seed from the operating system's entropy and return the seed (PyTorch: `Generator.seed`)."""
        seed = int.from_bytes(os.urandom(8), "little") >> 1
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed last set (PyTorch: `Generator.initial_seed`)."""
        return self._seed

    def get_state(self) -> dict:
        """The generator's whole state, for `set_state` (PyTorch returns a ByteTensor; symgrad's
        state is a dict of the engine's words, the seed and the kept normal sample)."""
        return {"engine": self._bits.state, "seed": self._seed, "normal": self._normal}

    def set_state(self, state: dict) -> "Generator":
        """Restore a state `get_state` returned."""
        if not isinstance(state, dict) or set(state) != {"engine", "seed", "normal"}:
            raise TypeError("Generator.set_state: expected a state returned by get_state()")
        self._bits.state, self._seed, self._normal = state["engine"], state["seed"], state["normal"]
        return self

    # --- the distributions (numpy arrays, flat; callers reshape) -------------------------------

    def _u32(self, n: int) -> np.ndarray:
        return self._bits.random_raw(n).astype(np.uint64) if n else np.zeros(0, np.uint64)

    def _u64(self, n: int) -> np.ndarray:
        words = self._u32(2 * n)
        return (words[0::2] << np.uint64(32)) | words[1::2]

    def _unit(self, n: int, dtype: np.dtype) -> np.ndarray:
        """n numbers uniform in [0, 1) in `dtype`, as PyTorch's uniform_real_distribution draws them."""
        if np.dtype(dtype) == np.float64:
            return (self._u64(n) & _MASK53).astype(np.float64) * 2.0 ** -53
        return ((self._u32(n) & _MASK24).astype(np.float64) * 2.0 ** -24).astype(np.float32)

    def uniform(self, n: int, dtype: np.dtype, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """PyTorch's `uniform_(low, high)` of n elements: `x * (high - low) + low` in `dtype`."""
        dt = np.dtype(dtype).type
        x = self._unit(n, dtype)
        return fma(x, dt(high) - dt(low), dt(low))

    def normal(self, n: int, dtype: np.dtype, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
        """PyTorch's `normal_(mean, std)` of n contiguous elements in `dtype`."""
        dt = np.dtype(dtype)
        if n >= 16:
            data = self._unit(n, dt)
            blocks = n // 16
            out = np.empty(n, dt)
            out[:blocks * 16] = _box_muller_16(data[:blocks * 16], dt)
            if n % 16:
                out[n - 16:] = _box_muller_16(self._unit(16, dt), dt)
            return fma(out, dt.type(std), dt.type(mean))
        out = np.empty(n, np.float64)
        for k in range(n):
            if self._normal is None:
                u1, u2 = self._unit(2, np.float64)
                radius = math.sqrt(-2.0 * math.log1p(-u2))
                theta = 2.0 * math.pi * u1
                self._normal = radius * math.sin(theta)
                out[k] = radius * math.cos(theta)
            else:
                out[k], self._normal = self._normal, None
        return fma(out, np.float64(std), np.float64(mean)).astype(dt)

    def integers(self, low: int, high: int, n: int) -> np.ndarray:
        """PyTorch's `random_(low, high)` of n elements: a draw modulo the range, plus low (int64)."""
        span = int(high) - int(low)
        if span <= 0:
            raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                               f">= to={high}")
        draws = self._u64(n) if span >= 1 << 32 else self._u32(n)
        return (draws % np.uint64(span)).astype(np.int64) + np.int64(low)

    def permutation(self, n: int) -> np.ndarray:
        """PyTorch's `randperm(n)`: Fisher-Yates from the front, one 32-bit draw per swap."""
        perm = np.arange(n, dtype=np.int64)
        draws = self._u32(max(n - 1, 0))
        for i in range(n - 1):
            z = i + int(draws[i]) % (n - i)
            perm[i], perm[z] = perm[z], perm[i]
        return perm


def _box_muller_16(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Box-Muller on blocks of 16 uniforms: element j and j + 8 of a block are one pair.
    float64 uses libm's log, cos and sin, as PyTorch's scalar kernel does; float32 uses the
    single-precision polynomials of its AVX2 kernel (`_log32`, `_sincos32`), so that the
    numbers are PyTorch's to the bit."""
    t = dtype.type
    d = data.reshape(-1, 16)
    u1, u2 = t(1) - d[:, :8], d[:, 8:]
    theta = t(2.0 * math.pi) * u2
    if dtype == np.float64:             # libm's, one by one: numpy's own float64 log and sin differ
        radius = np.sqrt(-2.0 * _each(math.log, u1))
        sin, cos = _each(math.sin, theta), _each(math.cos, theta)
    else:
        radius = np.sqrt(t(-2) * _log32(u1))
        sin, cos = _sincos32(theta)
    return np.concatenate([radius * cos, radius * sin], axis=1).reshape(-1)


# --- float32 log and sincos as PyTorch's AVX2 normal kernel computes them ---------------------
# Cephes' single-precision polynomials (the form of Julien Pommier's sse_mathfun, zlib licence),
# evaluated in float32 with the fused multiply-adds the compiler forms from them.

_F = np.float32
_LOG_P = tuple(_F(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                                1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                                3.3333331174e-1))
_SIN_P = tuple(_F(c) for c in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1))
_COS_P = tuple(_F(c) for c in (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2))
_PI_PARTS = tuple(_F(c) for c in (-0.78515625, -2.4187564849853515625e-4, -3.77489497744594108e-8))


def _each(fn, x: np.ndarray) -> np.ndarray:
    return np.array([fn(v) for v in x.ravel().tolist()], np.float64).reshape(x.shape)


def _fma32(a, b, c) -> np.ndarray:
    """a * b + c in float32, rounded once."""
    return fma(np.asarray(a, _F), b, c)


def _log32(x: np.ndarray) -> np.ndarray:
    """log(x) for positive float32 x: x = m * 2**e with m in [sqrt(1/2), sqrt(2)), then a
    degree-9 polynomial in m - 1 and e * log(2) in two parts."""
    x = np.maximum(x, np.array(0x00800000, np.int32).view(_F))       # no denormals
    bits = x.view(np.int32)
    e = ((bits.view(np.uint32) >> 23).astype(np.int32) - 127).astype(_F) + _F(1)
    m = ((bits & ~np.int32(0x7F800000)) | _F(0.5).view(np.int32)).view(_F)     # in [0.5, 1)
    small = m < _F(0.707106781186547524)
    x = (m - _F(1)) + np.where(small, m, _F(0))
    e = e - np.where(small, _F(1), _F(0))
    z = x * x
    y = np.full_like(x, _LOG_P[0])
    for c in _LOG_P[1:]:
        y = _fma32(y, x, c)
    y = _fma32(y * x, z, e * _F(-2.12194440e-4))
    y = _fma32(-z, _F(0.5), y)
    return _fma32(e, _F(0.693359375), x + y)


def _sincos32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) for float32 x: reduction by multiples of pi / 4 in three parts, then
    the sine or the cosine polynomial by octant."""
    negative = np.signbit(x)
    x = np.abs(x)
    j = (x * _F(1.27323954473516)).astype(np.int32)
    j = (j + 1) & ~np.int32(1)
    y = j.astype(_F)
    for part in _PI_PARTS:
        x = _fma32(y, part, x)
    z = x * x
    c = _fma32(np.full_like(x, _COS_P[0]), z, _COS_P[1])
    c = _fma32(c, z, _COS_P[2]) * z
    c = _fma32(c, z, -(z * _F(0.5))) + _F(1)
    s = _fma32(np.full_like(x, _SIN_P[0]), z, _SIN_P[1])
    s = _fma32(s, z, _SIN_P[2]) * z
    s = _fma32(s, x, x)
    first = (j & 2) == 0
    sin, cos = np.where(first, s, c), np.where(first, c, s)
    sin = np.where(negative ^ ((j & 4) != 0), -sin, sin)
    cos = np.where(((~(j - 2)) & 4) != 0, -cos, cos)
    return sin, cos


default_generator = Generator()
default_generator.seed()          # as PyTorch's: a fresh seed in every process, until manual_seed


def generator_of(generator: Generator | None) -> Generator:
    """The generator to draw from: the one given (a `generator=` argument) or the default one."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a symgrad.Generator, got {type(generator).__name__}")
    return generator


def manual_seed(seed: int) -> Generator:
    """Seed the default generator that rand, randn, randint, randperm, nn.init and dropout
    draw from, and return it. The numbers are PyTorch's: `torch.manual_seed(s)` followed by
    the same calls prints the same values. PyTorch: `torch.manual_seed`."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the default generator from the operating system and return the seed. PyTorch: `torch.seed`."""
    return default_generator.seed()


def initial_seed() -> int:
    """The default generator's seed. PyTorch: `torch.initial_seed`."""
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    """The default generator's state. PyTorch: `torch.get_rng_state`."""
    return default_generator.get_state()


def set_rng_state(new_state: dict) -> None:
    """Restore the default generator's state. PyTorch: `torch.set_rng_state`."""
    default_generator.set_state(new_state)
