/* convertkit C bundle runtime: integer helpers shared by the generated kernels.
 *
 * TFLite's fixed-point arithmetic (the reference kernels' MultiplyByQuantizedMultiplier with its
 * two-step rounding, as TFLite Micro builds it by default), so integer results are bit-identical to
 * TFLite Micro and to convertkit's reference interpreter. C99, header-only, no floating point.
 */
#ifndef CK_RUNTIME_H
#define CK_RUNTIME_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define CK_INLINE static inline __attribute__((always_inline))
#else
#define CK_INLINE static inline
#endif

/* The ARM DSP fast path (dual 16-bit MACs) is used where the core has it; define CK_NO_DSP to force the
 * portable C, which gives bit-identical results. */
#if defined(__ARM_FEATURE_DSP) && !defined(CK_NO_DSP)
#define CK_USE_DSP 1
#endif

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32, rounded half away from zero. */
CK_INLINE int32_t ck_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int32_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (0 <= exponent <= 31). */
CK_INLINE int32_t ck_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((((uint32_t)1) << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier: x * m * 2^(shift - 31), m in [2^30, 2^31). */
CK_INLINE int32_t ck_mbqm(int32_t x, int32_t m, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return ck_rdbpot(ck_srdhm((int32_t)((uint32_t)x << left), m), right);
}

CK_INLINE int32_t ck_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* ---- conv/dense (int8) ---- */
/* The node functions of model.c are kept out of model_run: inlined all together, their loops run out
 * of registers (spills in the int8 dot products on Cortex-M). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
/* noipa too: gcc 12 at -O1 and up can rewrite a store of a node function in terms of an input
 * pointer's induction variable (both point into the arena), then judge the function free of side
 * effects and drop its call from model_run (wrong outputs; e.g. a depthwise conv with channel
 * multiplier 2). noipa keeps callers from using what IPA infers about the function. */
#define CK_NOINLINE __attribute__((noinline, noipa))
#elif defined(__GNUC__) || defined(__clang__)
#define CK_NOINLINE __attribute__((noinline))
#else
#define CK_NOINLINE
#endif

/* acc + sum(a[i] * b[i]), i < n, in exact int32 (the accumulation of TFLite's int8 conv and
 * fully-connected kernels). With CK_USE_DSP (Cortex-M4/M7/M33...: __ARM_FEATURE_DSP) four products at a
 * time with SXTB16 + SMLAD (two 16x16 multiply-accumulates per instruction); the sum is the same
 * integer, so both builds give identical outputs. */
#if defined(CK_USE_DSP)
#include <arm_acle.h>

typedef uint32_t __attribute__((aligned(1), may_alias)) ck_u32_unaligned;

/* four bytes from any address (ARMv7E-M loads unaligned words) */
CK_INLINE uint32_t ck_read_u32(const int8_t *p)
{
    return *(const ck_u32_unaligned *)(const void *)p;
}

/* SXTB16 of the word rotated right by 8: bytes 1 and 3 sign-extended to halfwords (one instruction) */
CK_INLINE int32_t ck_sxtb16_ror8(uint32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

CK_INLINE int32_t ck_dot_s8(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
    int32_t i = 0;
#if defined(CK_USE_DSP)
    for (; i + 4 <= n; i += 4) {
        const uint32_t wa = ck_read_u32(a + i);
        const uint32_t wb = ck_read_u32(b + i);
        acc = __smlad(__sxtb16(wa), __sxtb16(wb), acc);
        acc = __smlad(ck_sxtb16_ror8(wa), ck_sxtb16_ror8(wb), acc);
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

/* Two dot products sharing the input row: *acc0 += sum(a[i] * b0[i]), *acc1 += sum(a[i] * b1[i]) (two
 * output channels per pass over the input: the input's loads and sign extensions are shared). */
CK_INLINE void ck_dot2_s8(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n, int32_t *acc0,
                          int32_t *acc1)
{
    int32_t i = 0;
    int32_t s0 = *acc0, s1 = *acc1;
#if defined(CK_USE_DSP)
    for (; i + 4 <= n; i += 4) {
        const uint32_t wa = ck_read_u32(a + i);
        const int32_t alo = __sxtb16(wa), ahi = ck_sxtb16_ror8(wa);
        const uint32_t w0 = ck_read_u32(b0 + i);
        const uint32_t w1 = ck_read_u32(b1 + i);
        s0 = __smlad(alo, __sxtb16(w0), s0);
        s0 = __smlad(ahi, ck_sxtb16_ror8(w0), s0);
        s1 = __smlad(alo, __sxtb16(w1), s1);
        s1 = __smlad(ahi, ck_sxtb16_ror8(w1), s1);
    }
#endif
    for (; i < n; ++i) {
        const int32_t v = a[i];
        s0 += v * (int32_t)b0[i];
        s1 += v * (int32_t)b1[i];
    }
    *acc0 = s0;
    *acc1 = s1;
}

/* Four dot products sharing the input row: *accj += sum(a[i] * b[j * stride + i]), j < 4, in one pass
 * (with the DSP extension the input word is loaded and sign-extended once for four weight rows). */
CK_INLINE void ck_dot4_s8(const int8_t *a, const int8_t *b, int32_t stride, int32_t n, int32_t *acc0,
                          int32_t *acc1, int32_t *acc2, int32_t *acc3)
{
    int32_t i = 0;
    int32_t s0 = *acc0, s1 = *acc1, s2 = *acc2, s3 = *acc3;
    const int8_t *b0 = b, *b1 = b + stride, *b2 = b + 2 * stride, *b3 = b + 3 * stride;
#if defined(CK_USE_DSP)
    for (; i + 4 <= n; i += 4) {
        const uint32_t wa = ck_read_u32(a + i);
        const int32_t alo = __sxtb16(wa), ahi = ck_sxtb16_ror8(wa);
        uint32_t w = ck_read_u32(b0 + i);
        s0 = __smlad(alo, __sxtb16(w), s0);
        s0 = __smlad(ahi, ck_sxtb16_ror8(w), s0);
        w = ck_read_u32(b1 + i);
        s1 = __smlad(alo, __sxtb16(w), s1);
        s1 = __smlad(ahi, ck_sxtb16_ror8(w), s1);
        w = ck_read_u32(b2 + i);
        s2 = __smlad(alo, __sxtb16(w), s2);
        s2 = __smlad(ahi, ck_sxtb16_ror8(w), s2);
        w = ck_read_u32(b3 + i);
        s3 = __smlad(alo, __sxtb16(w), s3);
        s3 = __smlad(ahi, ck_sxtb16_ror8(w), s3);
    }
#endif
    for (; i < n; ++i) {
        const int32_t v = a[i];
        s0 += v * (int32_t)b0[i];
        s1 += v * (int32_t)b1[i];
        s2 += v * (int32_t)b2[i];
        s3 += v * (int32_t)b3[i];
    }
    *acc0 = s0;
    *acc1 = s1;
    *acc2 = s2;
    *acc3 = s3;
}

/* The same four (two) dot products of (a[i] - zp): windows over the padding, where the input zero
 * point is not folded into the bias. DSP: the sign-extended input halfwords minus the packed zero point
 * (SSUB16, exact: |a - zp| < 2^15), then the same SMLADs. */
#if defined(CK_USE_DSP)
CK_INLINE int32_t ck_pack_zp(int32_t zp)
{
    return (int32_t)(((uint32_t)(uint16_t)zp << 16) | (uint32_t)(uint16_t)zp);
}
#endif

CK_INLINE void ck_dot2_s8_zp(const int8_t *a, int32_t zp, const int8_t *b0, const int8_t *b1, int32_t n,
                             int32_t *acc0, int32_t *acc1)
{
    int32_t i = 0;
    int32_t s0 = *acc0, s1 = *acc1;
#if defined(CK_USE_DSP)
    const int32_t zz = ck_pack_zp(zp);
    for (; i + 4 <= n; i += 4) {
        const uint32_t wa = ck_read_u32(a + i);
        const int32_t alo = __ssub16(__sxtb16(wa), zz), ahi = __ssub16(ck_sxtb16_ror8(wa), zz);
        const uint32_t w0 = ck_read_u32(b0 + i);
        const uint32_t w1 = ck_read_u32(b1 + i);
        s0 = __smlad(alo, __sxtb16(w0), s0);
        s0 = __smlad(ahi, ck_sxtb16_ror8(w0), s0);
        s1 = __smlad(alo, __sxtb16(w1), s1);
        s1 = __smlad(ahi, ck_sxtb16_ror8(w1), s1);
    }
#endif
    for (; i < n; ++i) {
        const int32_t v = (int32_t)a[i] - zp;
        s0 += v * (int32_t)b0[i];
        s1 += v * (int32_t)b1[i];
    }
    *acc0 = s0;
    *acc1 = s1;
}

CK_INLINE void ck_dot4_s8_zp(const int8_t *a, int32_t zp, const int8_t *b, int32_t stride, int32_t n,
                             int32_t *acc0, int32_t *acc1, int32_t *acc2, int32_t *acc3)
{
    int32_t i = 0;
    int32_t s0 = *acc0, s1 = *acc1, s2 = *acc2, s3 = *acc3;
    const int8_t *b0 = b, *b1 = b + stride, *b2 = b + 2 * stride, *b3 = b + 3 * stride;
#if defined(CK_USE_DSP)
    const int32_t zz = ck_pack_zp(zp);
    for (; i + 4 <= n; i += 4) {
        const uint32_t wa = ck_read_u32(a + i);
        const int32_t alo = __ssub16(__sxtb16(wa), zz), ahi = __ssub16(ck_sxtb16_ror8(wa), zz);
        uint32_t w = ck_read_u32(b0 + i);
        s0 = __smlad(alo, __sxtb16(w), s0);
        s0 = __smlad(ahi, ck_sxtb16_ror8(w), s0);
        w = ck_read_u32(b1 + i);
        s1 = __smlad(alo, __sxtb16(w), s1);
        s1 = __smlad(ahi, ck_sxtb16_ror8(w), s1);
        w = ck_read_u32(b2 + i);
        s2 = __smlad(alo, __sxtb16(w), s2);
        s2 = __smlad(ahi, ck_sxtb16_ror8(w), s2);
        w = ck_read_u32(b3 + i);
        s3 = __smlad(alo, __sxtb16(w), s3);
        s3 = __smlad(ahi, ck_sxtb16_ror8(w), s3);
    }
#endif
    for (; i < n; ++i) {
        const int32_t v = (int32_t)a[i] - zp;
        s0 += v * (int32_t)b0[i];
        s1 += v * (int32_t)b1[i];
        s2 += v * (int32_t)b2[i];
        s3 += v * (int32_t)b3[i];
    }
    *acc0 = s0;
    *acc1 = s1;
    *acc2 = s2;
    *acc3 = s3;
}

/* acc + sum((a[i] - zp) * b[i]): the same sum where the input zero point is not folded into the bias
 * (windows that overlap the padding). */
CK_INLINE int32_t ck_dot_s8_zp(const int8_t *a, int32_t zp, const int8_t *b, int32_t n, int32_t acc)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += ((int32_t)a[i] - zp) * (int32_t)b[i];
    }
    return acc;
}

/* Depthwise, four adjacent channels of one tap: *aj += x[j] * w[j] (j < 4), accumulators in registers.
 * DSP (little-endian, where byte j of the word is element j): two word loads, SXTB16 of the even and
 * odd bytes, SMLABB/SMLATT. */
CK_INLINE void ck_mac4_s8(const int8_t *x, const int8_t *w, int32_t *a0, int32_t *a1, int32_t *a2,
                          int32_t *a3)
{
#if defined(CK_USE_DSP) && !defined(__ARM_BIG_ENDIAN)
    const uint32_t xw = ck_read_u32(x);
    const uint32_t ww = ck_read_u32(w);
    const int32_t xe = __sxtb16(xw), we = __sxtb16(ww);
    const int32_t xo = ck_sxtb16_ror8(xw), wo = ck_sxtb16_ror8(ww);
    *a0 = __smlabb(xe, we, *a0);
    *a2 = __smlatt(xe, we, *a2);
    *a1 = __smlabb(xo, wo, *a1);
    *a3 = __smlatt(xo, wo, *a3);
#else
    *a0 += (int32_t)x[0] * (int32_t)w[0];
    *a1 += (int32_t)x[1] * (int32_t)w[1];
    *a2 += (int32_t)x[2] * (int32_t)w[2];
    *a3 += (int32_t)x[3] * (int32_t)w[3];
#endif
}

/* the same with (x[j] - zp): windows over the padding, where the zero point is not in the bias */
CK_INLINE void ck_mac4_s8_zp(const int8_t *x, int32_t zp, const int8_t *w, int32_t *a0, int32_t *a1,
                             int32_t *a2, int32_t *a3)
{
#if defined(CK_USE_DSP) && !defined(__ARM_BIG_ENDIAN)
    const uint32_t xw = ck_read_u32(x);
    const uint32_t ww = ck_read_u32(w);
    const int32_t zz = ck_pack_zp(zp);
    const int32_t xe = __ssub16(__sxtb16(xw), zz), we = __sxtb16(ww);
    const int32_t xo = __ssub16(ck_sxtb16_ror8(xw), zz), wo = ck_sxtb16_ror8(ww);
    *a0 = __smlabb(xe, we, *a0);
    *a2 = __smlatt(xe, we, *a2);
    *a1 = __smlabb(xo, wo, *a1);
    *a3 = __smlatt(xo, wo, *a3);
#else
    *a0 += ((int32_t)x[0] - zp) * (int32_t)w[0];
    *a1 += ((int32_t)x[1] - zp) * (int32_t)w[1];
    *a2 += ((int32_t)x[2] - zp) * (int32_t)w[2];
    *a3 += ((int32_t)x[3] - zp) * (int32_t)w[3];
#endif
}

/* int32 accumulator -> int8: MultiplyByQuantizedMultiplier (ck_mbqm) with the shift given as its left
 * (max(shift, 0)) and right (max(-shift, 0)) parts, output zero point, activation clamp. The high
 * multiply is gemmlowp's SaturatingRoundingDoublingHighMul written as (x * m + 2^30) >> 31 (floor):
 * equal to its nudge-and-truncate form for every x, and its saturating case (x == m == INT32_MIN)
 * cannot occur since quantized multipliers lie in [0, 2^31). Few instructions on Cortex-M (SMLAL and
 * two shifts); a left or right part that is a literal 0 folds away. */
CK_INLINE int8_t ck_requant_s8(int32_t acc, int32_t m, int left, int right, int32_t zp, int32_t lo,
                               int32_t hi)
{
    const int64_t ab = (int64_t)(int32_t)((uint32_t)acc << left) * (int64_t)m;
    const int32_t high = (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
    return (int8_t)ck_clamp(ck_rdbpot(high, right) + zp, lo, hi);
}

/* ---- elementwise/pool/softmax (int8) ---- */

/* Leading zero bits of a 32-bit value (32 for zero). */
CK_INLINE int ck_clz32(uint32_t x)
{
    int n = 0;
    if (x == 0u) {
        return 32;
    }
    if ((x & 0xFFFF0000u) == 0u) { n += 16; x <<= 16; }
    if ((x & 0xFF000000u) == 0u) { n += 8; x <<= 8; }
    if ((x & 0xF0000000u) == 0u) { n += 4; x <<= 4; }
    if ((x & 0xC0000000u) == 0u) { n += 2; x <<= 2; }
    if ((x & 0x80000000u) == 0u) { n += 1; }
    return n;
}

/* RoundingDivideByPOT for exponents up to 62 (softmax's final shift can exceed 31). */
CK_INLINE int32_t ck_rdbpot64(int32_t x, int exponent)
{
    const int64_t mask = (((int64_t)1) << exponent) - 1;
    const int64_t remainder = (int64_t)x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)(((int64_t)x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for 0 < exponent < 31 (saturating left shift). */
CK_INLINE int32_t ck_sat_lshift(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((((uint32_t)1) << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a), a in [0, 1) as Q0.31, result Q0.31
 * (three Newton-Raphson steps in Q2.29), as TFLite's GetReciprocal uses it. */
CK_INLINE int32_t ck_one_over_one_plus_x(int32_t a)
{
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
    int32_t x = (int32_t)((uint32_t)1515870810 + (uint32_t)ck_srdhm(half_den, -1010580540));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t hdx = ck_srdhm(half_den, x);
        const int32_t one_minus = (int32_t)(((uint32_t)1 << 29) - (uint32_t)hdx);
        x = (int32_t)((uint32_t)x + (uint32_t)ck_sat_lshift(ck_srdhm(x, one_minus), 2));
    }
    return ck_sat_lshift(x, 1);
}

#endif /* CK_RUNTIME_H */
