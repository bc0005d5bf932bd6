"""The CUDA backend (issue 5): `sg.compile(..., backend="cuda")`.

Compiling needs only nvcc (everything here is skipped without it); running needs a GPU. To keep
nvcc's time down, one graph covers every op family at once (elementwise, every reduction
strategy, argmax/argmin, matmul, shape ops, losses, in float32 and float64 and integers), and
`backward` with one weight array per output checks every pullback in a single module.

Where there is no GPU, the generated CUDA still runs: `EMULATOR` below is a small CPU
emulation of the CUDA subset the modules use (blocks one after another, a block's threads as
cooperative fibers switched at __syncthreads and at warp shuffles), so the kernels' index
arithmetic, reductions, tiles and launches are checked against the interpreter on any machine
with g++. On a GPU the real kernels are checked the same way. Expected values always come from
`backend="interp"`."""
from __future__ import annotations

import concurrent.futures
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.build import CompileError

cuda = pytest.importorskip("symgrad.cuda")
from symgrad.backends.cuda import runtime as cuda_runtime
from symgrad.backends.cuda import toolchain

pytestmark = pytest.mark.skipif(not cuda.have_nvcc(), reason="nvcc (the CUDA compiler) is not installed")

RTOL = {np.dtype("float32"): 2e-5, np.dtype("float64"): 1e-10}


def _gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and cuda.device_count() > 0


needs_gpu = pytest.mark.skipif("not _gpu()", reason="no CUDA device")


# --- the graph --------------------------------------------------------------------------------

def var(shape, dtype="float32", name=None, requires_grad=True):
    return sg.Variable(shape=tuple(shape), dtype=dtype, name=name,
                       requires_grad=requires_grad and np.dtype(dtype).kind == "f")


def _float_ops(dt, tag):
    """Inputs and outputs for one float dtype. Shapes are chosen so that every reduction
    strategy of symgrad/backends/cuda/launch.py appears: one thread per output (few values), one warp (up to
    2048), one block (more), two stages (a few outputs of very many values)."""
    n = lambda s: f"{s}_{tag}"  # noqa: E731
    x = var((3, 4), dt, n("x"))
    p = var((3, 4), dt, n("p"))            # positive
    b = var((4,), dt, n("b"))
    c = var((3, 1), dt, n("c"))            # positive
    s = var((), dt, n("s"))
    e = var((2, 3, 4), dt, n("e"))
    w = var((5, 100), dt, n("w"))          # warp reductions
    big = var((2, 3000), dt, n("big"))     # block reductions
    huge = var((40000,), dt, n("huge"))    # two-stage reductions
    A = var((70, 130), dt, n("A"))         # several 64 x 64 tiles, K in many steps
    B = var((130, 90), dt, n("B"))
    P = var((2, 1, 3, 4), dt, n("P"))
    Q = var((5, 4, 2), dt, n("Q"))
    v = var((4,), dt, n("v"))
    logits = var((4, 5), dt, n("logits"))
    labels = var((4,), "int64", n("labels"))
    prob = var((3, 3), dt, n("prob"), requires_grad=False)
    inputs = [x, p, b, c, s, e, w, big, huge, A, B, P, Q, v, logits, labels, prob]
    outs = [
        # elementwise, broadcasting
        -x, sg.exp(x), sg.log(p), sg.sqrt(p), sg.abs(x), sg.sign(x), sg.sin(x), sg.cos(x), sg.tanh(x),
        sg.sigmoid(x), sg.relu(x), x ** 2, p ** 0.5, sg.pow(p, x), 2.0 ** x, sg.clamp(x, -0.5, 0.5),
        x + b, x - c, c * b, x / b, b / c, sg.maximum(x, b), sg.minimum(c, x), sg.where(x > b, x, c),
        s * x, e + x, e * b, e / s, x < b, x >= c, x == x, x != b,
        # reductions: thread, warp, block and two-stage strategies
        x.sum(), x.sum(1), e.sum((0, 2)), e.mean(1, keepdim=True), e.max(), e.min(0)[0],
        e.max(-1, keepdim=True).values, sg.norm(e), e.norm(dim=1), sg.logsumexp(e, 1),
        sg.softmax(e, -1), sg.log_softmax(e, 0), (sg.exp(e) * e).sum(1), e.permute(2, 0, 1).sum(0),
        w.sum(1), w.max(1)[0], w.mean(0), sg.logsumexp(w, 1), sg.softmax(w, 1),
        big.sum(1), big.max(1)[0], big.min(), sg.logsumexp(big, 1),
        huge.sum(), huge.max(), huge.min(), huge.mean(), (huge * huge).sum(),
        # argmax / argmin, every strategy
        sg.argmax(e, 2), sg.argmin(e, 0), e.max(1).indices, sg.argmax(w, 1), sg.argmin(big, 1),
        sg.argmax(huge), sg.argmin(huge, 0),
        # matmul: 1-D, 2-D over several tiles, batched with broadcasting, transposed operands
        v @ b, x @ v, v @ e.transpose(1, 2), A @ B, P @ Q, e @ e.transpose(1, 2), A.T @ A[:, :7],
        sg.tanh(x @ e[0].T + c),
        # shape ops
        e.reshape(6, 4), e.flatten(1), x.unsqueeze(0), c.squeeze(), x.expand(2, 3, 4),
        e[1:, ::2, 1:3], x[:, None, 2:], e[-1, ..., 1], sg.cat([x, e[0], x * 2], 1),
        sg.stack([x, x + 1], -1), e.permute(2, 0, 1).reshape(4, 6), x.T, x[:0], x[:0].sum(0),
        # losses
        sg.mse_loss(x, p), sg.cross_entropy(logits, labels),
        sg.binary_cross_entropy_with_logits(x[:, :3], prob),
        sg.nn.functional.cross_entropy(logits, labels, reduction="none"),
        # indexing: a gather at loaded indices, whose pullback adds up at them (issue 12)
        w[labels], sg.gather(logits, 1, labels[:, None]), x[:, labels[:2] - 1],
    ]
    rng = np.random.default_rng(1 if tag == "f" else 2)

    def r(shape, lo=-2.0, hi=2.0):
        return rng.uniform(lo, hi, shape).astype(dt)

    arrays = [r((3, 4)), r((3, 4), 0.5, 2), r((4,)), r((3, 1), 0.5, 2), r((), 0.5, 2),
              (rng.permutation(24) * 0.25 - 3).reshape(2, 3, 4).astype(dt), r((5, 100)), r((2, 3000)),
              r((40000,)), r((70, 130)), r((130, 90)), r((2, 1, 3, 4)), r((5, 4, 2)), r((4,)),
              r((4, 5)) * 3, np.array([0, 4, 2, 4], np.int64), r((3, 3), 0, 1)]
    return inputs, outs, arrays


def _int_ops():
    a = var((3, 4), "int64", "a")
    i = var((5, 100), "int32", "i")
    m = var((2, 100), "bool", "m")
    inputs = [a, i, m]
    outs = [a + 1, a // 3, a ** 2, abs(a), a.sum(), a.sum(1), a.max(1)[0], sg.argmax(a, 1),
            i.sum(1), i.max(1)[0], sg.argmin(i, 1), i * 2, sg.amax(m, 1), sg.where(m, 1.0, 0.0)]
    rng = np.random.default_rng(3)
    arrays = [rng.integers(-5, 6, (3, 4)), rng.integers(-50, 50, (5, 100)).astype(np.int32),
              rng.random((2, 100)) > 0.5]
    return inputs, outs, arrays


def _graph():
    """Every op family in one graph. Some inputs are named like C++ and CUDA words, which the
    CUDA backend must rename."""
    f_in, f_out, f_arr = _float_ops("float32", "f")
    d_in, d_out, d_arr = _float_ops("float64", "d")
    i_in, i_out, i_arr = _int_ops()
    odd = [var((3,), "float32", name) for name in ("new", "threadIdx", "exp", "template")]
    odd_out = [odd[0] * odd[1] + sg.exp(odd[2]) - odd[3]]
    rng = np.random.default_rng(4)
    return (f_in + d_in + i_in + odd, f_out + d_out + i_out + odd_out,
            f_arr + d_arr + i_arr + [rng.uniform(-1, 1, 3).astype(np.float32) for _ in odd])


class Compiled:
    """The graph compiled for CUDA (forward, seeded backward and value_and_grad: three modules,
    built by nvcc in parallel) and for the interpreter, with the arrays and grad_outputs."""

    def __init__(self):
        self.inputs, self.outs, self.arrays = _graph()
        self.fn = sg.compile(self.inputs, self.outs, backend="cuda")
        self.ref = sg.compile(self.inputs, self.outs, backend="interp")
        rng = np.random.default_rng(5)
        self.seeds = [np.asarray(rng.uniform(0.5, 1.5, o.shape)).astype(o.dtype) for o in self.outs]
        self.backward, self.value_and_grad = self.fn._explicit_fns()   # starts their builds
        forward = getattr(self.fn, "forward_fn", self.fn.forward)    # the Function behind fn.forward
        self.functions = [forward, self.backward, self.value_and_grad]

    def check_device_arrays(self):
        """forward and backward from device inputs (and device grad_outputs): device results,
        the interpreter's values."""
        inputs = [cuda.to_device(a) for a in self.arrays]
        got = self.fn.forward(*inputs)
        want = self.ref.forward(*self.arrays)
        for k, (g, w) in enumerate(zip(got, want)):
            assert isinstance(g, cuda.DeviceArray)
            _close(g.numpy(), w, f"forward output {k} from device inputs")
        seeds = [cuda.to_device(s) for s in self.seeds]
        grads = self.fn.backward(*inputs, grad_outputs=seeds)
        for v, g, w in zip(self.fn.wrt, grads, self.ref.backward(*self.arrays, grad_outputs=self.seeds)):
            assert isinstance(g, cuda.DeviceArray)
            _close(g.numpy(), w, f"gradient wrt {v.name} from device inputs")

    def check(self):
        """fn's forward, backward and value_and_grad against the interpreter's."""
        got = self.fn.forward(*self.arrays)
        want = self.ref.forward(*self.arrays)
        for k, (g, w) in enumerate(zip(got, want)):
            _close(g, w, f"forward output {k} ({self.outs[k]._describe()})")
        gc = self.fn.backward(*self.arrays, grad_outputs=self.seeds)
        gi = self.ref.backward(*self.arrays, grad_outputs=self.seeds)
        assert len(gc) == len(gi) == len(self.fn.wrt)
        for v, a, b in zip(self.fn.wrt, gc, gi):
            _close(a, b, f"gradient wrt {v.name}")
        values, grads = self.fn.value_and_grad(*self.arrays, grad_outputs=self.seeds)
        for k, (a, b) in enumerate(zip(values, want)):
            _close(a, b, f"value_and_grad output {k}")
        for v, a, b in zip(self.fn.wrt, grads, gi):
            _close(a, b, f"value_and_grad gradient wrt {v.name}")


def _close(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol = RTOL[expected.dtype]
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * 4 * max(scale, 1.0), err_msg=what)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    c = Compiled()
    c.emulation = Emulation(c.functions, tmp_path_factory.mktemp("cuda_emulator")) \
        if shutil.which("g++") else None
    return c


# --- compiling ------------------------------------------------------------------------------

def test_every_op_and_pullback_compiles(compiled):
    """The CUDA text of forward, backward and value_and_grad compiles with nvcc into a cached
    library with the extern "C" entry points."""
    for f in compiled.functions:
        lib = f.library()
        src = f.source
        assert f.path.suffix == ".cu" and f.path.read_text() == src
        assert (f.path.parent / "kernel.so").exists()
        assert f'extern "C" int {lib.base}_packed(void **args)' in src
        assert f'extern "C" int {lib.base}_run(void **args, const unsigned char *where, const uintptr_t ' \
               f'*streams, void **workspace,' in src
        assert f'extern "C" int {lib.base}_release(void **workspace)' in src
        assert src.count("<<<") + src.count("(no output elements: nothing to launch)") >= f.n_kernels
        assert "#pragma omp" not in src and "malloc(" not in src.split("Host side")[0]
    fwd = compiled.fn.forward.source
    for text in ("grid-stride loop", "one thread per output", "one warp per output",
                 "one block per output", "in two stages", "64 x 64 tile", "the first index of the extreme",
                 "sg_block_reduce(", "__shfl_down_sync", "__shared__", "cudaMemcpyHostToDevice"):
        assert text in fwd, text
    # float sums accumulate in double, as in the C backend
    assert re.search(r"double sg_acc\d+ = \(double\)\(0\);", fwd) and "sg_acc0 += v" in fwd


def test_generated_cuda_is_readable(compiled):
    """A comment per kernel naming the graph node it computes; user names are sanitised and
    C++ words among them renamed."""
    src = compiled.fn.forward.source
    comments = re.findall(r"^/\* (\w+) = ", src, re.M)
    assert len(comments) >= compiled.fn.forward.n_kernels
    for word in ("new", "threadIdx", "exp", "template"):
        assert not re.search(rf"\*__restrict__ {word}\b", src), word
    assert "const float *__restrict__ new_2" in src


def test_flags_and_cache_key(monkeypatch):
    monkeypatch.delenv("SYMGRAD_CUDA_ARCH", raising=False)
    monkeypatch.delenv("SYMGRAD_NVCC_FLAGS", raising=False)
    nvcc = toolchain.require_nvcc()
    assert "-arch=sm_90" in toolchain.cuda_flags(nvcc)
    monkeypatch.setenv("SYMGRAD_CUDA_ARCH", "80")
    flags = toolchain.cuda_flags(nvcc)
    assert "-arch=sm_80" in flags and "-shared" in flags and "-fPIC" in flags
    assert any(f.startswith("-DSYMGRAD_NVCC_RELEASE=") for f in flags)


def test_cache_is_reused(compiled):
    """Compiling the same graph again finds the published entry: nvcc does not run."""
    compiled.fn.forward.library()
    again = sg.compile(compiled.inputs, compiled.outs, backend="cuda")
    assert again.forward._build.key == compiled.fn.forward._build.key
    assert again.forward._build.proc is None
    assert again.forward.source == compiled.fn.forward.source


def test_compile_error_carries_nvcc_output():
    build = toolchain.CudaBuild("this is not CUDA;\n", "symgrad_broken_packed")
    with pytest.raises(CompileError) as info:
        build.result()
    assert "error" in info.value.output and str(info.value.source_path).endswith(".cu")
    assert "nvcc" in str(info.value)


def test_missing_nvcc_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SYMGRAD_NVCC", "/nonexistent/nvcc")
    x = var((3,), "float32", "x")
    with pytest.raises(CompileError, match="nvcc"):
        sg.compile([x], sg.exp(x), backend="cuda")


# --- running without a GPU -------------------------------------------------------------------

@pytest.mark.skipif("_gpu()", reason="a CUDA device is present")
def test_calling_without_a_gpu_says_so(compiled):
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        compiled.fn.forward(*compiled.arrays)
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        compiled.fn.backward(*compiled.arrays, grad_outputs=compiled.seeds)
    assert cuda.device_count() == 0 and not cuda.is_available()
    with pytest.raises(cuda.NoCudaDevice, match="No CUDA device is available"):
        cuda.to_device(np.ones(3))


# --- running on a GPU ------------------------------------------------------------------------

@needs_gpu
def test_gpu_matches_the_interpreter(compiled):
    compiled.check()


@needs_gpu
def test_gpu_device_arrays(compiled):
    compiled.check_device_arrays()


@needs_gpu
def test_gpu_torch_tensors_are_used_in_place():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    v = var((1000,), "float32", "v")
    fn = sg.compile([v], sg.exp(v) * 2, backend="cuda")
    x = torch.randn(1000, device="cuda")
    out = fn(x)
    assert isinstance(out, cuda.DeviceArray)
    back = torch.as_tensor(out, device="cuda")          # no copy: the same memory
    assert back.data_ptr() == out.ptr
    torch.testing.assert_close(back, torch.exp(x) * 2)
    with pytest.raises(ValueError, match="not C-contiguous"):
        fn(torch.randn(2000, device="cuda")[::2])


@needs_gpu
def test_gpu_scalar_loss_and_threads():
    """A small MLP through the implicit seed, called from several threads at once."""
    rng = np.random.default_rng(6)
    x = var((64, 32), "float32", "x", requires_grad=False)
    labels = var((64,), "int64", "labels")
    W = var((32, 10), "float32", "W")
    loss = sg.cross_entropy(sg.relu(x) @ W, labels)
    fn = sg.compile([x, labels, W], loss, backend="cuda")
    ref = sg.compile([x, labels, W], loss, backend="interp")
    args = [rng.standard_normal((64, 32)).astype(np.float32), rng.integers(0, 10, 64),
            rng.standard_normal((32, 10)).astype(np.float32)]
    want = ref.value_and_grad(*args)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for value, (g,) in pool.map(lambda _: fn.value_and_grad(*args), range(8)):
            _close(np.asarray(value), np.asarray(want[0]), "loss")
            _close(g, want[1][0], "gradient")


# --- running in the CPU emulator -------------------------------------------------------------

EMULATOR = r"""/* A CPU emulation of the CUDA subset symgrad's generated modules use, for testing their
   kernels where there is no GPU. Blocks run one after another; the threads of a block are
   cooperative fibers (ucontext) in one OS thread, switched at __syncthreads() and at warp
   shuffles, so shared memory is a plain static and barriers are exact. A barrier that not
   every live thread of the block (or warp) reaches aborts the process, as does a launch
   outside CUDA's limits (reported as cudaErrorInvalidConfiguration). cudaMalloc'd memory is
   filled with 0xff bytes (NaN for floats) and guarded at its end. */
#pragma once
#include <ucontext.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 { unsigned x, y, z; };

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
       cudaErrorInvalidConfiguration = 9, cudaErrorNoDevice = 100 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
typedef void *cudaStream_t;
#define cudaStreamPerThread ((cudaStream_t)0x2)

namespace sg_emu {
enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };
struct Fiber { ucontext_t ctx; char *stack; int state; };
static const size_t STACK = 1 << 16;
static ucontext_t main_ctx;
static Fiber fibers[1024];
static unsigned current, nthreads;
static std::function<void()> body;
static unsigned char slots[1024][16];
static cudaError_t last_error = cudaSuccess;
static uint3 tid;
static uint3 bid;
static dim3 bdim, gdim;
static long launches = 0;

static void die(const char *what)
{
    fprintf(stderr, "sg_emu: %s\n", what);
    abort();
}
static void trampoline()
{
    body();
    fibers[current].state = DONE;
    swapcontext(&fibers[current].ctx, &main_ctx);
}
static void yield(int state)
{
    fibers[current].state = state;
    swapcontext(&fibers[current].ctx, &main_ctx);
}
static unsigned linear() { return current; }

static void run_block()
{
    for (unsigned t = 0; t < nthreads; ++t) {
        Fiber &f = fibers[t];
        if (!f.stack) f.stack = (char *)malloc(STACK);
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, trampoline, 0);
        f.state = RUN;
    }
    for (;;) {
        for (unsigned t = 0; t < nthreads; ++t) {
            if (fibers[t].state != RUN) continue;
            current = t;
            tid.x = t % bdim.x;
            tid.y = t / bdim.x % bdim.y;
            tid.z = t / (bdim.x * bdim.y);
            swapcontext(&main_ctx, &fibers[t].ctx);
        }
        unsigned done = 0, at_block = 0;
        bool released = false;
        for (unsigned t = 0; t < nthreads; ++t) {
            done += fibers[t].state == DONE;
            at_block += fibers[t].state == WAIT_BLOCK;
        }
        if (done == nthreads) return;
        for (unsigned w = 0; w < nthreads; w += 32) {
            unsigned end = w + 32 < nthreads ? w + 32 : nthreads, waiting = 0, live = 0;
            for (unsigned t = w; t < end; ++t) {
                live += fibers[t].state != DONE;
                waiting += fibers[t].state == WAIT_WARP;
            }
            if (waiting && waiting == live) {
                for (unsigned t = w; t < end; ++t) fibers[t].state = RUN;
                released = true;
            } else if (waiting) {
                die("a warp shuffle that not every live lane of the warp reached");
            }
        }
        if (!released && at_block) {
            if (at_block + done != nthreads) die("__syncthreads() not reached by every live thread");
            for (unsigned t = 0; t < nthreads; ++t)
                if (fibers[t].state == WAIT_BLOCK) fibers[t].state = RUN;
            released = true;
        }
        if (!released) die("deadlock");
    }
}
}  // namespace sg_emu

#define threadIdx sg_emu::tid
#define blockIdx sg_emu::bid
#define blockDim sg_emu::bdim
#define gridDim sg_emu::gdim
static const int warpSize = 32;

inline void __syncthreads() { sg_emu::yield(sg_emu::WAIT_BLOCK); }

template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    (void)mask;
    static_assert(sizeof(T) <= 16, "shuffle of a big type");
    const unsigned me = sg_emu::linear(), lane = me % 32;
    memcpy(sg_emu::slots[me], &v, sizeof(T));
    sg_emu::yield(sg_emu::WAIT_WARP);               /* every lane has written */
    T out;
    const bool inside = (lane % width) + delta < (unsigned)width && me + delta < sg_emu::nthreads;
    const unsigned src = inside ? me + delta : me;
    memcpy(&out, sg_emu::slots[src], sizeof(T));
    sg_emu::yield(sg_emu::WAIT_WARP);               /* every lane has read */
    return out;
}

template <typename K, typename... A> void sg_emu_launch(K kernel, dim3 grid, dim3 block, A... args)
{
    using namespace sg_emu;
    ++launches;
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (!threads || threads > 1024 || block.z > 64 || !grid.x || !grid.y || !grid.z ||
        grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    nthreads = (unsigned)threads;
    bdim = block;
    gdim = grid;
    body = [&]() { kernel(args...); };
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                bid.x = x; bid.y = y; bid.z = z;
                run_block();
            }
}

static const size_t SG_GUARD = 64;
static const uint64_t SG_MAGIC = 0x5347454d55444556ull;    /* marks memory from cudaMalloc */
static long sg_mallocs = 0, sg_live = 0;
inline cudaError_t cudaGetDeviceCount(int *n)
{
    const char *e = getenv("SG_EMU_DEVICES");
    *n = e ? atoi(e) : 1;
    return *n ? cudaSuccess : cudaErrorNoDevice;
}
inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
/* A block: [padding][magic][size][n bytes][guard of 0xff], the n bytes 256-byte aligned. */
inline cudaError_t cudaMalloc(void **p, size_t n)
{
    const char *limit = getenv("SG_EMU_MEMORY");
    if (limit && n > (size_t)atoll(limit)) return cudaErrorMemoryAllocation;
    void *raw = NULL;                       /* 256-byte aligned, as CUDA's */
    if (posix_memalign(&raw, 256, n + SG_GUARD + 256)) return cudaErrorMemoryAllocation;
    char *m = (char *)raw + 256 - 16;
    memcpy(m, &SG_MAGIC, 8);
    memcpy(m + 8, &n, sizeof(size_t));
    memset(m + 16, 0xff, n + SG_GUARD);
    *p = m + 16;
    ++sg_mallocs;
    ++sg_live;
    return cudaSuccess;
}
inline cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    char *m = (char *)p - 16;
    size_t n;
    uint64_t magic;
    memcpy(&magic, m, 8);
    if (magic != SG_MAGIC) sg_emu::die("cudaFree of memory that cudaMalloc did not return");
    memcpy(&n, m + 8, sizeof(size_t));
    for (size_t k = 0; k < SG_GUARD; ++k)
        if ((unsigned char)((char *)p)[n + k] != 0xff)
            sg_emu::die("a write past the end of the device memory");
    memset(m, 0, 16);
    free((char *)p - 256);
    --sg_live;
    return cudaSuccess;
}
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2,
                      cudaMemoryTypeManaged = 3 };
struct cudaPointerAttributes { cudaMemoryType type; int device; void *devicePointer; void *hostPointer; };
/* Device memory is inside a block cudaMalloc returned: its header (the magic word, the size)
   is found up to 64 bytes before the pointer. (Reads a little before a host pointer: fine for
   the tests' heap arrays.) */
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p)
{
    a->type = cudaMemoryTypeUnregistered;
    a->device = 0;
    const uintptr_t at = (uintptr_t)p;
    for (uintptr_t h = (at & ~(uintptr_t)7) - 16; h + 80 >= at; h -= 8) {
        uint64_t magic;
        size_t n;
        memcpy(&magic, (const void *)h, 8);
        memcpy(&n, (const void *)(h + 8), sizeof(size_t));
        if (magic == SG_MAGIC && at < h + 16 + n) {
            a->type = cudaMemoryTypeDevice;
            break;
        }
    }
    return cudaSuccess;
}
extern "C" long sg_emu_mallocs() { return sg_mallocs; }
extern "C" long sg_emu_live() { return sg_live; }
inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    (void)kind;
    if (n && (!dst || !src)) return cudaErrorInvalidValue;
    memcpy(dst, src, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t)
{
    return cudaMemcpy(dst, src, n, kind);
}
inline cudaError_t cudaMemset(void *dst, int value, size_t n)
{
    memset(dst, value, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t)
{
    return cudaMemset(dst, value, n);
}
inline cudaError_t cudaGetLastError()
{
    cudaError_t e = sg_emu::last_error;
    sg_emu::last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaErrorUnknown";
    }
}
inline const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "emulated error";
    }
}
extern "C" long sg_emu_launches() { return sg_emu::launches; }
"""

_LAUNCH = re.compile(r"([\w<>]+)<<<(dim3\([^)]*\)), (dim3\([^)]*\))>>>\(")


class Emulation:
    """g++ builds of the modules' CUDA text (and of the runtime module's) for the CPU emulator,
    started at once (beside nvcc's builds: they need only the text)."""

    def __init__(self, functions, folder: Path):
        (folder / "sg_emu.h").write_text(EMULATOR)
        (folder / "cuda_runtime.h").write_text('#include "sg_emu.h"\n')
        self.folder = folder
        self.jobs = [self.build(f.source, f) for f in functions]
        self.runtime_job = self.build(cuda_runtime.runtime_source(), None)

    def build(self, source, function):
        source = _LAUNCH.sub(r"sg_emu_launch(\1, \2, \3, ", source)
        assert "<<<" not in source
        name = hashlib.sha256(source.encode()).hexdigest()[:16]
        cpp, so = self.folder / f"{name}.cpp", self.folder / f"{name}.so"
        cpp.write_text(source)
        cmd = ["g++", "-std=c++17", "-O0", "-shared", "-fPIC", "-Wl,-Bsymbolic", f"-I{self.folder}",
               "-o", str(so), str(cpp)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return function, cpp, so, proc

    @staticmethod
    def _wait(job):
        function, cpp, so, proc = job
        output, _ = proc.communicate()
        assert proc.returncode == 0, output
        return cpp, so

    def libraries(self):
        libs = []
        for job in self.jobs:
            cpp, so = self._wait(job)
            libs.append(toolchain.CudaLibrary(so, cpp, job[0]._build.symbol))
        return libs

    def runtime(self):
        cpp, so = self._wait(self.runtime_job)
        return cuda_runtime.Runtime(so, cpp)

    def compile(self, function):
        """A Function of ours (built by nvcc) switched to its emulated library."""
        cpp, so = self._wait(self.build(function.source, function))
        _use_library(function, toolchain.CudaLibrary(so, cpp, function._build.symbol))
        return function


def _use_library(function, lib):
    """Runs `function` through `lib` from now on (its caller, which holds the library and its
    workspaces, is made afresh)."""
    function._lib = lib
    function.__dict__.pop("_caller", None)


def emulator_counters(lib):
    """(cudaMalloc calls, live allocations) so far in one emulated library."""
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("long sg_emu_mallocs(void); long sg_emu_live(void);")
    handle = ffi.dlopen(str(lib.path))
    return handle.sg_emu_mallocs(), handle.sg_emu_live()


@pytest.fixture(scope="module")
def emulated(compiled):
    if compiled.emulation is None:
        pytest.skip("no g++ for the CPU emulator")
    libs = compiled.emulation.libraries()
    saved = [f._lib for f in compiled.functions]
    saved_runtime = list(cuda_runtime._RUNTIME)
    cuda_runtime._RUNTIME[:] = [compiled.emulation.runtime()]
    for f, lib in zip(compiled.functions, libs):
        _use_library(f, lib)
    yield compiled
    for f, lib in zip(compiled.functions, saved):
        _use_library(f, lib)
    cuda_runtime._RUNTIME[:] = saved_runtime


def test_emulated_kernels_match_the_interpreter(emulated):
    """Every kernel (and every pullback's) run on the CPU emulator: the same answers as the
    interpreter. This checks the index arithmetic, the reductions' strategies, the matmul
    tiles and the launch configurations, without a GPU."""
    emulated.check()


def test_emulated_errors_name_what_failed(emulated, monkeypatch):
    """The entry's status codes become Python exceptions with the module's message."""
    monkeypatch.setenv("SG_EMU_DEVICES", "0")
    with pytest.raises(RuntimeError, match="no CUDA device is available") as info:
        emulated.fn.forward(*emulated.arrays)
    assert isinstance(info.value, cuda.NoCudaDevice)
    monkeypatch.setenv("SG_EMU_DEVICES", "1")
    # a label out of range: the kernels raise the module's flag, Python an IndexError
    bad = list(emulated.arrays)
    at = [v.name for v in emulated.inputs].index("labels_f")
    bad[at] = np.array([0, 5, 2, 4], np.int64)
    with pytest.raises(IndexError, match=r"out of range: .*labels in \[0, 5\)"):
        emulated.fn.forward(*bad)


# --- device arrays, workspaces (emulated) ------------------------------------------------------

class Small:
    """A small graph (matmul, tanh, a checked cross-entropy per row) for the host-side tests."""

    def __init__(self, emulation):
        x, W, b = var((3, 4), "float32", "x"), var((4, 5), "float32", "W"), var((5,), "float32", "b")
        labels = var((3,), "int64", "labels")
        h = sg.tanh(x @ W + b)
        nll = sg.cross_entropy(h, labels, reduction="none")
        self.inputs = [x, W, b, labels]
        self.fn = sg.compile(self.inputs, [h, nll], backend="cuda")
        self.function = emulation.compile(self.fn.forward_fn)
        rng = np.random.default_rng(7)
        self.arrays = [rng.standard_normal(v.shape).astype(np.float32) for v in self.inputs[:3]] + \
            [np.array([4, 0, 2])]
        self.want = sg.compile(self.inputs, [h, nll], backend="interp")(*self.arrays)

    def check(self, outs, kind):
        assert len(outs) == 2
        for o, w in zip(outs, self.want):
            assert isinstance(o, kind), type(o)
            _close(np.asarray(o), w, "small graph")

    def fresh_caller(self):
        """Forget the function's workspaces (their device memory is freed with the caller)."""
        self.function.__dict__.pop("_caller", None)
        import gc
        gc.collect()


@pytest.fixture(scope="module")
def small(emulated):
    return Small(emulated.emulation)


class Foreign:
    """Another library's device array: only `__cuda_array_interface__`."""

    def __init__(self, **interface):
        self.__cuda_array_interface__ = interface


def _foreign(dev, **changes):
    cai = dict(dev.__cuda_array_interface__, stream=2, strides=(16, 4)[-len(dev.shape):] if dev.shape else None)
    cai.update(changes)
    return Foreign(**cai)


def test_emulated_device_arrays_stay_on_the_device(emulated, small):
    """Device arrays in: used in place, and the results are DeviceArrays (exposing
    __cuda_array_interface__ and .numpy()); host arrays in: numpy arrays out; mixed: device."""
    dev = [cuda.to_device(a) for a in small.arrays]
    outs = small.fn(*dev)
    small.check(outs, cuda.DeviceArray)
    cai = outs[0].__cuda_array_interface__
    assert cai["shape"] == (3, 5) and cai["typestr"] == "<f4" and cai["version"] == 3 and cai["data"][0]
    assert outs[1].numpy().dtype == np.float32 and repr(outs[1]).startswith("DeviceArray([")
    small.check(small.fn(*small.arrays), np.ndarray)
    small.check(small.fn(small.arrays[0], dev[1], small.arrays[2], dev[3]), cuda.DeviceArray)
    # another library's array, with explicit strides and a producer stream
    small.check(small.fn(_foreign(dev[0]), *dev[1:]), cuda.DeviceArray)
    emulated.check_device_arrays()


def test_emulated_bad_device_arrays_are_clear_errors(small):
    dev = [cuda.to_device(a) for a in small.arrays]
    rest = dev[1:]
    with pytest.raises(TypeError, match=r"input 0 'x' expects dtype float32, got a CUDA device array of "
                                        r"shape \(3, 4\) and dtype float64"):
        small.fn(cuda.to_device(small.arrays[0].astype(np.float64)), *rest)
    with pytest.raises(ValueError, match=r"input 0 'x' expects shape \(3, 4\), got a CUDA device array of "
                                         r"shape \(4, 3\)"):
        small.fn(cuda.to_device(small.arrays[0].T.copy()), *rest)
    with pytest.raises(ValueError, match=r"input 0 'x' .* strides \(4, 12\), not C-contiguous"):
        small.fn(_foreign(dev[0], strides=(4, 12)), *rest)
    host = np.ascontiguousarray(small.arrays[0])
    with pytest.raises(ValueError, match=r"input x .*pointer 0x[0-9a-f]+ is not CUDA device memory"):
        small.fn(_foreign(dev[0], data=(host.ctypes.data, False)), *rest)
    with pytest.raises(ValueError, match="data pointer is null"):
        small.fn(_foreign(dev[0], data=(0, False)), *rest)
    with pytest.raises(IndexError, match=r"out of range: .*labels in \[0, 5\)"):
        small.fn(*dev[:3], cuda.to_device(np.array([0, 5, 1])))
    torch = pytest.importorskip("torch")
    # a PyTorch CPU tensor has the attribute's descriptor but no interface: it is host data
    small.check(small.fn(torch.tensor(small.arrays[0]), *small.arrays[1:]), np.ndarray)


def test_emulated_workspace_is_allocated_once(small):
    """The first call allocates the workspace; later calls reuse it; it is freed with the
    function's caller. Device results come from the runtime's cache once dropped."""
    small.fresh_caller()
    lib = small.function._lib
    small.fn(*small.arrays)
    mallocs, live = emulator_counters(lib)
    for _ in range(3):
        small.check(small.fn(*small.arrays), np.ndarray)
    assert emulator_counters(lib) == (mallocs, live)
    small.fresh_caller()
    assert emulator_counters(lib)[1] == live - 2          # staging and scratch are freed
    dev = [cuda.to_device(a) for a in small.arrays]
    rt = cuda_runtime._RUNTIME[0]
    small.fn(*dev)                                        # its results are dropped at once
    before = emulator_counters(rt)
    for _ in range(3):
        small.check(small.fn(*dev), cuda.DeviceArray)
    assert emulator_counters(rt) == before
    cuda.empty_cache()                                    # frees all but the inputs
    assert emulator_counters(rt)[1] == len(dev) < before[1]


def test_emulated_out_of_memory_is_a_memory_error(small, monkeypatch):
    small.fresh_caller()
    monkeypatch.setenv("SG_EMU_MEMORY", "100")
    with pytest.raises(MemoryError, match=r"symgrad_forward \(CUDA\): allocating \d+ bytes of device memory "
                                          r"for the (scratch|host arrays) failed: out of memory"):
        small.fn(*small.arrays)
    monkeypatch.delenv("SG_EMU_MEMORY")
    small.check(small.fn(*small.arrays), np.ndarray)    # and it recovers


def _vector_kernels(prepare):
    """1-D kernels get a vectorised twin (4 elements per step) used when every pointer is aligned;
    lengths that are not multiples of 4 leave a tail; a misaligned device input (a view one
    element into a larger array) takes the scalar kernel. `prepare(function)` readies one for
    running (the emulator, or nothing on a GPU)."""
    x, w = var((1003,), "float32", "x"), var((1003,), "float32", "w")
    u, v = var((40003,), "float64", "u"), var((40003,), "float64", "v")
    maps = sg.compile([x, w], [x * w + 1], backend="cuda")
    nest = sg.compile([u, v], [sg.tanh(u) * v, (u * v).sum()], backend="cuda")
    for fn in (maps, nest):
        assert "_v4<<<" in fn.forward.source and "SG_ALIGNED(" in fn.forward.source
        prepare(fn.forward_fn)
    rng = np.random.default_rng(8)
    xs, ws = rng.standard_normal(1003).astype(np.float32), rng.standard_normal(1003).astype(np.float32)
    us, vs = rng.standard_normal(40003), rng.standard_normal(40003)

    def shifted(a):
        """A device view of `a` one element into a larger array: aligned to 4 bytes, not 16."""
        base = cuda.to_device(np.concatenate([a[:1], a]))
        cai = dict(base.__cuda_array_interface__, shape=a.shape, data=(base.ptr + a.itemsize, False))
        view = Foreign(**cai)
        view.base = base
        return view
    want = [xs * ws + 1]
    for args in ([xs, ws], [cuda.to_device(xs), cuda.to_device(ws)], [shifted(xs), cuda.to_device(ws)]):
        got = maps(*args)
        _close(np.asarray(got[0]), want[0], "x * w + 1")
    for args in ([us, vs], [cuda.to_device(us), shifted(vs)]):
        got = nest(*args)
        _close(np.asarray(got[0]), np.tanh(us) * vs, "tanh(u) * v")
        _close(np.asarray(got[1]), np.asarray(np.dot(us, vs)), "sum(u * v)")


def test_emulated_vector_kernels(emulated):
    _vector_kernels(emulated.emulation.compile)


@needs_gpu
def test_gpu_vector_kernels():
    _vector_kernels(lambda f: f)


def _transposes(prepare):
    """Maps that read one buffer across the order they write in (x.T, permutes) stage 32 x 32
    tiles through shared memory; edges that are not multiples of 32, batch dims, and other
    reads in the same loop are handled. `prepare` as for _vector_kernels."""
    A, B = var((40, 70), "float32", "A"), var((70, 40), "float32", "B")
    P = var((3, 50, 33), "float64", "P")
    fn = sg.compile([A, B, P], [A.T * 2 + B, sg.exp(P.transpose(1, 2)), P.permute(2, 0, 1) + 0],
                    backend="cuda")
    assert fn.forward.source.count("__shared__") >= 3 and "sg_tile[threadIdx.x][sg_j]" in fn.forward.source
    prepare(fn.forward_fn)
    rng = np.random.default_rng(9)
    a, b, p = (rng.standard_normal((40, 70)).astype(np.float32), rng.standard_normal((70, 40)).astype(np.float32),
               rng.standard_normal((3, 50, 33)))
    got = fn(a, b, p)
    _close(got[0], a.T * 2 + b, "A.T * 2 + B")
    _close(got[1], np.exp(p.transpose(0, 2, 1)), "exp(P.transpose(1, 2))")
    _close(got[2], p.transpose(2, 0, 1), "P.permute(2, 0, 1)")


def test_emulated_transposes(emulated):
    _transposes(emulated.emulation.compile)


@needs_gpu
def test_gpu_transposes():
    _transposes(lambda f: f)
