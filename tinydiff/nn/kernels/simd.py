"""An explicit 16 x float32 vector type for Numba kernels, and the six operations a convolution kernel needs.

Why. Numba's auto-vectoriser turns a plain direct-convolution loop into code that reloads and stores its partial sums
on every step (2-7 GFLOP/s measured; see chapter 5). A register-blocked kernel must keep a small tile of partial sums
in vector registers for the whole reduction, the way a BLAS micro-kernel does. With a type whose LLVM data model is
``<16 x float>``, each local vector variable of a kernel becomes an SSA value that LLVM keeps in a register, and a
kernel written as ``acc = vfma(w, x, acc)`` compiles to broadcast + fused multiply-add instructions.

    vzero()          -> vec16 of zeros
    vload(a, i)      -> a[i:i+16]            a: 1-D float32 array (unaligned load, NO bounds check: the caller's
                                             layout guarantees i + 16 <= len(a))
    vstore(a, i, v)  a[i:i+16] = v
    vbcast(x)        -> vec16 filled with the scalar x (cast to float32)
    vfma(a, b, c)    -> a * b + c            (llvm.fma: one rounding)
    vadd(a, b), vmul(a, b)
    vmask(v, m)      -> v where m != 0, else 0 (a select: unlike v * m, a NaN or inf in v becomes 0 where m is 0)
    vhsum(v)         -> float32, the sum of the 16 lanes

Portability. The vector is an LLVM vector type, not an AVX-512 instruction: on a CPU with AVX-512 one vec16 is one
zmm register; on AVX2 (or ARM NEON) LLVM splits it into 2 (or 4) narrower registers, so the same kernels run there,
with fewer accumulators fitting in the register file. Nothing here asks the CPU for a feature at import time.

Without the compiler. Under ``NUMBA_DISABLE_JIT=1`` the same names are plain Python functions on 16-element NumPy
arrays (slicing is bounds-checked there, so a layout bug shows up as a shape error), and every kernel built on them
runs as ordinary, slow Python: fine for the tests' tiny images, far too slow for training.
"""

from __future__ import annotations

import numpy as np
from numba import config

VL = 16                                  # lanes per vector: 16 float32 = 512 bits

if config.DISABLE_JIT:                   # the portable fallback: the same operations on NumPy arrays
    def vzero():
        return np.zeros(VL, np.float32)

    def vload(a, i):
        v = a[i:i + VL].copy()
        if v.shape != (VL,):
            raise IndexError(f"vload: a[{i}:{i + VL}] is outside an array of length {len(a)}")
        return v

    def vstore(a, i, v):
        a[i:i + VL] = v

    def vbcast(x):
        return np.full(VL, x, np.float32)

    def vfma(a, b, c):
        return (a * b + c).astype(np.float32)

    def vadd(a, b):
        return a + b

    def vmul(a, b):
        return a * b

    def vmask(v, m):
        return np.where(m != 0, v, np.float32(0.0)).astype(np.float32)

    def vhsum(v):
        return np.float32(v.sum())

else:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.extending import intrinsic, models, register_model

    _f32 = ir.FloatType()
    _v16 = ir.VectorType(_f32, VL)

    class Vec16Type(types.Type):
        """Numba's name for an LLVM <16 x float> value."""

        def __init__(self):
            super().__init__(name="vec16f32")

    vec16 = Vec16Type()

    @register_model(Vec16Type)
    class _Vec16Model(models.PrimitiveModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type, _v16)

    def _vptr(context, builder, aryty, ary, idx):
        """Pointer to a[idx] (1-D float32 array), seen as a pointer to <16 x float>."""
        a = context.make_array(aryty)(context, builder, ary)
        return builder.bitcast(builder.gep(a.data, [idx]), _v16.as_pointer())

    def _check_f32_1d(name, arr):
        if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == 1):
            raise TypeError(f"{name}: expected a 1-D float32 array, got {arr}; flatten with a.reshape(-1)")

    @intrinsic
    def vzero(typingctx):
        def codegen(context, builder, sig, args):
            return ir.Constant(_v16, [0.0] * VL)
        return vec16(), codegen

    @intrinsic
    def vload(typingctx, arr, idx):
        _check_f32_1d("vload", arr)

        def codegen(context, builder, sig, args):
            return builder.load(_vptr(context, builder, sig.args[0], args[0], args[1]), align=4)
        return vec16(arr, idx), codegen

    @intrinsic
    def vstore(typingctx, arr, idx, v):
        _check_f32_1d("vstore", arr)

        def codegen(context, builder, sig, args):
            builder.store(args[2], _vptr(context, builder, sig.args[0], args[0], args[1]), align=4)
            return context.get_dummy_value()
        return types.none(arr, idx, v), codegen

    @intrinsic
    def vbcast(typingctx, x):
        def codegen(context, builder, sig, args):
            val = context.cast(builder, args[0], sig.args[0], types.float32)
            undef = ir.Constant(_v16, ir.Undefined)
            v = builder.insert_element(undef, val, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(ir.IntType(32), VL), [0] * VL))
        return vec16(x), codegen

    @intrinsic
    def vfma(typingctx, a, b, c):
        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_v16, [_v16] * 3), "llvm.fma.v16f32")
            return builder.call(fn, list(args))
        return vec16(a, b, c), codegen

    @intrinsic
    def vadd(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return builder.fadd(args[0], args[1])
        return vec16(a, b), codegen

    @intrinsic
    def vmul(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return builder.fmul(args[0], args[1])
        return vec16(a, b), codegen

    @intrinsic
    def vmask(typingctx, v, m):
        def codegen(context, builder, sig, args):
            zero = ir.Constant(_v16, [0.0] * VL)
            return builder.select(builder.fcmp_ordered("!=", args[1], zero), args[0], zero)
        return vec16(v, m), codegen

    @intrinsic
    def vhsum(typingctx, v):
        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_f32, [_f32, _v16]),
                                                "llvm.vector.reduce.fadd.v16f32")
            return builder.call(fn, [ir.Constant(_f32, 0.0), args[0]], fastmath=("reassoc",))
        return types.float32(v), codegen
