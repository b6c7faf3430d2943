// torchsched: the core's portable cosine, shared by the native cosine families on the host and the device.
#pragma once

#include <cstring>

#include "common.hpp"

namespace torchsched {

// cos(x) from IEEE + - * and bit operations only. libm's cos is a function call the compiler cannot
// vectorize, and CUDA's differs from it in the last bit; this one rounds identically in a scalar host
// loop, in a SIMD loop over steps and in the CUDA kernel (built with --fmad=false), and is within 1 ulp
// of the exact cosine (the C library agrees with it bit for bit on about 97% of arguments).
// Method: x = n pi/2 + r, with pi/2 split into three 24-bit parts and a tail so n * part is exact for
// |n| < 2^29 and r is carried as a double-double; then the classic minimax polynomials for sin and cos
// on [-pi/4, pi/4] (fdlibm's coefficients) and n mod 4 picks which one and its sign. Past 2^29 pi/2
// (a cosine more than 10^8 periods along) the platform's cos takes over; ts_cos<false> returns NaN
// there instead, so a loop over steps stays free of calls and the caller redoes the rare NaN.
// torch's rules (torch_rules.hpp) keep the platform's cos instead (platform_cos), to stay torch's numbers exactly.

TS_HD uint64_t ts_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

TS_HD double ts_from_bits(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// s + e == a - b exactly (Knuth's two-sum, no branch on the magnitudes).
TS_HD void ts_two_diff(double a, double b, double& s, double& e) {
  s = a - b;
  const double b_part = a - s;
  e = (a - (s + b_part)) - (b - b_part);
}

// cos(x + y) and sin(x + y) for |x| <= pi/4, y the tail of x.
TS_HD double ts_cos_kernel(double x, double y) {
  const double C1 = 0x1.555555555554cp-5, C2 = -0x1.6c16c16c15177p-10, C3 = 0x1.a01a019cb159p-16,
               C4 = -0x1.27e4f809c52adp-22, C5 = 0x1.1ee9ebdb4b1c4p-29, C6 = -0x1.8fae9be8838d4p-37;
  const double z = x * x, z2 = z * z;
  const double r = z * (C1 + z * (C2 + z * C3)) + z2 * z2 * (C4 + z * (C5 + z * C6));
  const double half_z = 0.5 * z;
  const double w = 1.0 - half_z;
  return w + (((1.0 - w) - half_z) + (z * r - x * y));  // 1 - z/2 rounded once, its error added back
}

TS_HD double ts_sin_kernel(double x, double y) {
  const double S1 = -0x1.5555555555549p-3, S2 = 0x1.111111110f8a6p-7, S3 = -0x1.a01a019c161d5p-13,
               S4 = 0x1.71de357b1fe7dp-19, S5 = -0x1.ae5e68a2b9cebp-26, S6 = 0x1.5d93a5acfd57cp-33;
  const double z = x * x, z2 = z * z;
  const double r = S2 + z * (S3 + z * S4) + z * z2 * (S5 + z * S6);
  const double v = z * x;
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

constexpr double kCosArgLimit = 536870912.0 * 1.5707963267948966;  // 2^29 pi/2

TS_HD double ts_cos_reduced(double x) {
  const double P1 = 0x1.921fb4p+0, P2 = 0x1.4442dp-24, P3 = 0x1.846988p-48, P4 = 0x1.8cc51701b839ap-72;
  const double kTwoOverPi = 0x1.45f306dc9c883p-1, kShift = 0x1.8p52;
  const bool in_range = fabs(x) < kCosArgLimit;
  if (!in_range) x = 0.0;
  const double shifted = x * kTwoOverPi + kShift;  // x * 2/pi rounded to the nearest integer n ...
  const double n = shifted - kShift;
  const uint64_t quadrant = ts_bits(shifted);     // ... whose low bits are n's (two's complement)
  double s1, e1, s2, e2;
  ts_two_diff(x - n * P1, n * P2, s1, e1);  // x - n * P1 is exact (the two are within a factor 2)
  ts_two_diff(s1, n * P3, s2, e2);
  const double tail = (e1 + e2) - n * P4;
  const double r = s2 + tail;
  const double r_tail = tail - (r - s2);
  // cos(r + n pi/2) is cos r, -sin r, -cos r, sin r: select and negate by bits, so SIMD needs no branch.
  const uint64_t c = ts_bits(ts_cos_kernel(r, r_tail)), s = ts_bits(ts_sin_kernel(r, r_tail));
  const uint64_t use_sin = uint64_t{0} - (quadrant & 1u);
  const uint64_t negate = ((quadrant + 1u) & 2u) << 62;
  const double v = ts_from_bits(((s & use_sin) | (c & ~use_sin)) ^ negate);
  return in_range ? v : NAN;
}

template <bool kFallback = true>
TS_HD double ts_cos(double x) {
  if (kFallback && !(fabs(x) < kCosArgLimit)) return cos(x);
  return ts_cos_reduced(x);
}

}  // namespace torchsched
