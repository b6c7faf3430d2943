// torchsched: the one place where schedule formulas live.
//
// Every family is a TS_HD function of the step. The CPU engine, the CUDA kernel and the host mirror
// all call these, so a CPU test of a formula is a test of what the GPU computes. Plain structs only:
// no STL, no exceptions, no allocation, no I/O (this header is compiled by nvcc for the device too).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TS_HD __host__ __device__ inline
#else
#define TS_HD inline
#endif

namespace torchsched {

constexpr double kPi = 3.14159265358979323846;
constexpr int kNumParams = 8;
constexpr int kMaxDepth = 16;  // nesting of sequence/shift nodes a program may use

// One node of a compiled schedule program. Programs are laid out in pre-order: a combinator is
// followed by its children, and `size` counts the node plus its whole subtree, so the next sibling
// of node i is i + ops[i].size. Tables (milestones, points, boundaries) live in a shared `aux` array.
struct Op {
  int32_t code;  // OpCode
  int32_t size;  // nodes in this subtree, itself included
  int32_t a;     // aux offset (table families, sequence boundaries)
  int32_t b;     // table length, or number of children
  double p[kNumParams];
};
static_assert(sizeof(Op) == 16 + 8 * kNumParams, "Op must match the Python record layout");

enum OpCode : int32_t {
  // ---- leaves: closed forms of the step -------------------------------------------------------
  OP_CONSTANT = 0,        // p0 value
  OP_STEP = 1,            // p0 init, p1 step_size, p2 gamma: init * gamma^floor(t / step_size)
  OP_PIECEWISE_CONST = 2, // aux[a..a+b) boundaries, aux[a+b..a+2b] values; p0 1 = switch after b (Keras)
  OP_EXPONENTIAL = 3,     // p0 init, p1 rate, p2 steps, p3 begin, p4 staircase, p5 bound (NaN: none)
  OP_POLYNOMIAL = 4,      // p0 init, p1 end, p2 steps, p3 power, p4 cycle, p5 k (time exponent)
  OP_INVERSE_TIME = 5,    // p0 init, p1 rate, p2 steps, p3 staircase
  OP_INVERSE_POWER = 6,   // p0 init, p1 steps, p2 gamma
  OP_INVERSE_SQRT = 7,    // p0 init, p1 timescale
  OP_COSINE = 8,          // p0 init, p1 final, p2 steps, p3 exponent, p4 cycles, p5 clamp, p6 k
  OP_COSINE_RESTARTS = 9, // p0 init, p1 final, p2 first period, p3 period mult, p4 decay, p5 limit,
                          // p6 1 = decay the swing (Keras) / 0 = decay the peak (timm), p7 k
  OP_CYCLIC = 10,         // p0 base, p1 max, p2 step_up, p3 step_down, p4 mode, p5 gamma, p6 by-iteration
  OP_WARMUP = 11,         // p0 init, p1 peak, p2 steps, p3 shape (0 linear, 1 exponential, 2 constant)
  OP_ANNEAL = 12,         // p0 start, p1 end, p2 steps, p3 shape (0 linear, 1 cosine, 2 1-sqrt, 3 exponential)
  OP_INTERP = 13,         // aux[a..a+b) times, aux[a+b..a+2b) values; p0 0 linear / 1 cosine
  OP_TANH = 14,           // p0 init, p1 final, p2 steps, p3 lb, p4 ub
  // ---- torch's chainable rules: the new LR from the previous one (ctx.prev) --------------------
  OP_TORCH_STEP = 20,        // p0 step_size, p1 gamma
  OP_TORCH_MULTISTEP = 21,   // aux[a..a+b) sorted milestones (repeats allowed), p0 gamma
  OP_TORCH_CONSTANT = 22,    // p0 factor, p1 total_iters
  OP_TORCH_LINEAR = 23,      // p0 start_factor, p1 end_factor, p2 total_iters
  OP_TORCH_EXPONENTIAL = 24, // p0 gamma, p1 chain_at_0
  OP_TORCH_POLYNOMIAL = 25,  // p0 total_iters, p1 power, p2 chain_at_0
  OP_TORCH_COSINE = 26,      // p0 base lr, p1 eta_min, p2 T_max, p3 chain_at_0
  OP_TORCH_SWA = 27,         // p0 swa_lr, p1 anneal_epochs, p2 0 cos / 1 linear
  // ---- torch's closed forms and non-chainable rules (torchsched.lr_scheduler) ------------------
  OP_TORCH_INPUT = 28,              // ctx.prev itself: a value the caller computed (a Python lr_lambda)
  OP_TORCH_STEP_CLOSED = 29,        // p0 base, p1 step_size, p2 gamma: base * gamma ** (t // step_size)
  OP_TORCH_CONSTANT_CLOSED = 30,    // p0 base, p1 factor, p2 total_iters
  OP_TORCH_LINEAR_CLOSED = 31,      // p0 base, p1 start_factor, p2 end_factor, p3 total_iters
  OP_TORCH_EXPONENTIAL_CLOSED = 32, // p0 base, p1 gamma
  OP_TORCH_POLYNOMIAL_CLOSED = 33,  // p0 base, p1 total_iters, p2 power
  OP_TORCH_COSINE_CLOSED = 34,      // p0 base, p1 eta_min, p2 T_max; p3 1: the period is ctx.prev
  OP_TORCH_CYCLIC = 35,             // p0 low, p1 high, p2 total_size, p3 step_ratio, p4 mode, p5 gamma,
                                    // p6 1: scale by iterations, p7 1: momentum (high - swing);
                                    // mode 0 triangular, 1 triangular2, 2 exp_range, 3 scale in ctx.prev
  OP_TORCH_ONE_CYCLE = 36,          // p0 0 cos / 1 linear, p1 three_phase, p2..p4 phase ends, p5..p7 A, B, C
  OP_LEAF_END = 37,
  // ---- combinators --------------------------------------------------------------------------
  OP_PRODUCT = 40,   // b children, multiplied
  OP_SCALE = 41,     // p0 factor times the one child
  OP_SEQUENCE = 42,  // b children; aux[a..a+b-1) boundaries; piece k runs on t - boundary[k-1]
  OP_SHIFT = 43,     // the one child runs on t + p0
  OP_CODE_END = 44,
};

struct Ctx {
  double prev;  // the LR the group had before this step (chainable rules only)
};

// ---- small helpers --------------------------------------------------------------------------
TS_HD double ts_min(double a, double b) { return a < b ? a : b; }
TS_HD double ts_max(double a, double b) { return a > b ? a : b; }
TS_HD double ts_clamp01(double x) { return ts_min(1.0, ts_max(0.0, x)); }

// Number of entries of sorted table[0..n) that are <= t (or < t when strict).
TS_HD int32_t count_passed(const double* table, int32_t n, double t, bool strict) {
  int32_t lo = 0, hi = n;  // binary search: first index whose entry is past t
  while (lo < hi) {
    int32_t mid = (lo + hi) / 2;
    bool passed = strict ? (table[mid] < t) : (table[mid] <= t);
    if (passed) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// ---- cosine ----------------------------------------------------------------------------------
//
// cos(x) from IEEE + - * and bit operations only. libm's cos is a function call the compiler cannot
// vectorize, and CUDA's differs from it in the last bit; this one rounds identically in a scalar host
// loop, in a SIMD loop over steps and in the CUDA kernel (built with --fmad=false), and is within 1 ulp
// of the exact cosine (the C library agrees with it bit for bit on about 97% of arguments).
// Method: x = n pi/2 + r, with pi/2 split into three 24-bit parts and a tail so n * part is exact for
// |n| < 2^29 and r is carried as a double-double; then the classic minimax polynomials for sin and cos
// on [-pi/4, pi/4] (fdlibm's coefficients) and n mod 4 picks which one and its sign. Past 2^29 pi/2
// (a cosine more than 10^8 periods along) the platform's cos takes over; ts_cos<false> returns NaN
// there instead, so a loop over steps stays free of calls and the caller redoes the rare NaN.
// torch's rules below keep the platform's cos instead (platform_cos), to stay torch's numbers exactly.

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

// ---- leaf families ---------------------------------------------------------------------------

TS_HD double step_decay(const double* p, double t) {
  return p[0] * pow(p[2], floor(t / p[1]));
}

// torch MultiStepLR / optax piecewise_constant switch at t == boundary; Keras PiecewiseConstantDecay
// switches one step later (its boundaries are inclusive on the left piece).
TS_HD double piecewise_constant(const double* p, const double* aux, int32_t a, int32_t n, double t) {
  int32_t k = count_passed(aux + a, n, t, p[0] != 0.0);
  return aux[a + n + k];
}

// optax exponential_decay (TF/Keras ExponentialDecay is begin = 0, no bound). As in optax, the bound
// clips every value, the held initial one before `begin` included.
TS_HD double exponential_decay(const double* p, double t) {
  double count = t - p[3];
  double v = p[0];
  if (count > 0.0) {
    double e = count / p[2];
    if (p[4] != 0.0) e = floor(e);
    v = p[0] * pow(p[1], e);
  }
  double bound = p[5];
  if (bound == bound) v = (p[1] < 1.0) ? ts_max(v, bound) : ts_min(v, bound);  // NaN: no bound
  return v;
}

// (init - end) * (1 - (t/T)^k)^power + end; with cycle, T grows to the next multiple (Keras).
// (t/T)^k rather than t^k / T^k (timm's order): equal up to rounding, and finite for any k. The base
// 1 - (t/T)^k is kept >= 0: with a non-integer T, T * ceil(t/T) can round to just below t, and a
// negative base to a fractional power is NaN.
TS_HD double polynomial_decay(const double* p, double t) {
  double steps = p[2];
  if (p[4] != 0.0) {
    double m = (t == 0.0) ? 1.0 : ceil(t / steps);
    steps *= m;
  } else {
    t = ts_min(t, steps);
  }
  double frac = t / steps;
  if (frac == 0.0) return p[0];  // exactly init at the start, so a piece joins its predecessor seamlessly
  if (p[5] != 1.0) frac = pow(frac, p[5]);
  const double rest = ts_max(0.0, 1.0 - frac);
  return (p[0] - p[1]) * (p[3] == 1.0 ? rest : pow(rest, p[3])) + p[1];  // pow(x, 1) is x: skip the call
}

TS_HD double inverse_time_decay(const double* p, double t) {
  double e = t / p[2];
  if (p[3] != 0.0) e = floor(e);
  return p[0] / (1.0 + p[1] * e);
}

TS_HD double inverse_power_decay(const double* p, double t) {
  return p[0] * pow(1.0 + t / p[1], -p[2]);
}

// Transformers' inverse_sqrt after warmup, on its local clock: init / sqrt((t + timescale) / timescale).
TS_HD double inverse_sqrt_decay(const double* p, double t) {
  return p[0] / sqrt((t + p[1]) / p[1]);
}

// final + (init - final) * c^exponent, c = (1 + cos(2 pi cycles (t/T)^k)) / 2. cycles = 0.5 is one
// half cosine over T. clamp holds the final value past T (optax, Keras); without it the cosine goes on
// (torch's closed form, Transformers).
template <bool kCosFallback = true>
TS_HD double cosine_decay(const double* p, double t) {
  double steps = p[2];
  if (p[5] != 0.0) t = ts_min(t, steps);
  double frac = t / steps;
  if (p[6] != 1.0) frac = pow(frac, p[6]);  // timm's k_decay: t^k / T^k, finite for any k
  double c = 0.5 * (1.0 + ts_cos<kCosFallback>(kPi * (2.0 * p[4] * frac)));
  if (c == 1.0) return p[0];  // exactly init at the start (final + (init - final) may round)
  if (p[3] != 1.0) c = pow(c, p[3]);
  return p[1] + (p[0] - p[1]) * c;
}

// Index of the restart cycle that holds t, and where that cycle starts and how long it is. Returns
// false when t lies past infinitely many cycles (period_mult < 1 shrinks the periods geometrically, so
// they add up to first / (1 - mult)).
TS_HD bool restart_cycle(double t, double first, double mult, double* index, double* start, double* period) {
  if (mult == 1.0) {
    // floor(t / first) can land one cycle off when first is not an integer (33 / 1.1 rounds to just
    // below 30), so the cycle is checked against where it starts and ends, as below.
    double i = floor(t / first);
    if (i > 0.0 && i * first > t) i -= 1.0;
    if ((i + 1.0) * first <= t) i += 1.0;
    *index = i; *start = i * first; *period = first;
    return true;
  }
  if (mult < 1.0 && t * (1.0 - mult) >= first) return false;
  // Closed form as timm and Keras write it, then nudged so that rounding never puts t in the wrong cycle.
  double i = floor(log(1.0 - t / first * (1.0 - mult)) / log(mult));
  if (i < 0.0) i = 0.0;
  for (int k = 0; k < 2; ++k) {
    if (first * (1.0 - pow(mult, i + 1.0)) / (1.0 - mult) <= t) i += 1.0;
    if (i > 0.0 && first * (1.0 - pow(mult, i)) / (1.0 - mult) > t) i -= 1.0;
  }
  *index = i;
  *start = first * (1.0 - pow(mult, i)) / (1.0 - mult);
  *period = first * pow(mult, i);
  return *period > 0.0;
}

TS_HD double cosine_restarts(const double* p, double t) {
  double i, start, period;
  if (!restart_cycle(t, p[2], p[3], &i, &start, &period)) return p[1];
  double limit = p[5];
  if (limit > 0.0 && i >= limit) return p[1];
  double frac = ts_clamp01((t - start) / period);
  if (p[7] != 1.0) frac = pow(frac, p[7]);  // timm's k_decay
  double c = 0.5 * (1.0 + ts_cos(kPi * frac));
  double gamma = pow(p[4], i);
  if (p[6] != 0.0) return p[1] + (p[0] - p[1]) * gamma * c;  // Keras: the swing shrinks
  return p[1] + (p[0] * gamma - p[1]) * c;                     // timm: the peak shrinks
}

// torch CyclicLR, in torch's order of operations. mode 0 triangular, 1 triangular2, 2 exp_range.
TS_HD double cyclic(const double* p, double t) {
  double total = p[2] + p[3];
  double ratio = p[2] / total;
  double cycle = floor(1.0 + t / total);
  double x = 1.0 + t / total - cycle;
  // Clamped to [0, 1] so that rounding never carries the LR past base or max (nor below 0).
  double scale = ts_clamp01((x <= ratio) ? x / ratio : (x - 1.0) / (ratio - 1.0));
  double height = (p[1] - p[0]) * scale;
  if (height == 0.0) return p[0];  // at the bottom of a cycle: no 0 * inf from a growing scale
  double arg = (p[6] != 0.0) ? t : cycle;
  double fn = 1.0;
  if (p[4] == 1.0) fn = 1.0 / pow(2.0, arg - 1.0);
  else if (p[4] == 2.0) fn = pow(p[5], arg);
  return p[0] + height * fn;
}

// Warmup from init to peak over `steps`, then peak. Shapes: linear, exponential (geometric), constant.
TS_HD double warmup(const double* p, double t) {
  if (t >= p[2]) return p[1];
  double frac = t / p[2];
  if (p[3] == 1.0) return p[0] * pow(p[1] / p[0], frac);
  if (p[3] == 2.0) return p[0];
  return p[0] + (p[1] - p[0]) * frac;
}

// Anneal from start to end over `steps`, then end. Shapes: linear, cosine, 1-sqrt, exponential.
template <bool kCosFallback = true>
TS_HD double anneal(const double* p, double t) {
  double frac = ts_min(t, p[2]) / p[2];
  if (frac == 0.0) return p[0];  // exactly start at the start
  double w;  // weight of start
  if (p[3] == 1.0) w = 0.5 * (1.0 + ts_cos<kCosFallback>(kPi * frac));
  else if (p[3] == 2.0) w = 1.0 - sqrt(frac);
  else if (p[3] == 3.0) return p[0] * pow(p[1] / p[0], frac);
  else w = 1.0 - frac;
  return p[1] + (p[0] - p[1]) * w;
}

// Interpolation through (time, value) points; flat before the first and after the last.
TS_HD double interpolate(const double* p, const double* aux, int32_t a, int32_t n, double t) {
  const double* times = aux + a;
  const double* values = aux + a + n;
  if (t <= times[0]) return values[0];
  if (t >= times[n - 1]) return values[n - 1];
  int32_t k = count_passed(times, n, t, false);  // times[k-1] <= t < times[k]
  double lo = values[k - 1], hi = values[k];
  double frac = (t - times[k - 1]) / (times[k] - times[k - 1]);
  if (frac == 0.0) return lo;  // through every point exactly
  if (p[0] != 0.0) return hi + (lo - hi) * 0.5 * (1.0 + ts_cos(kPi * frac));
  return lo + (hi - lo) * frac;
}

// timm TanhLRScheduler: final + (init - final) / 2 * (1 - tanh(lb (1 - t/T) + ub t/T)), final past T.
TS_HD double tanh_decay(const double* p, double t) {
  if (t >= p[2]) return p[1];
  double tr = t / p[2];
  return p[1] + 0.5 * (p[0] - p[1]) * (1.0 - tanh(p[3] * (1.0 - tr) + p[4] * tr));
}

// ---- torch's rules (torch.optim.lr_scheduler and swa_utils, 2.13), torch's order of operations ---
//
// Chainable rules give the new LR from the previous one (prev), as torch's get_lr does inside step().
// Every torch rule is split into the terms one step shares between all groups (torch_coef) and the
// per-group rest (torch_apply), so an engine stepping many groups computes the shared terms once and
// still gets, bit for bit, what evaluating each group on its own gives.
//
// The constructor's initial step: ExponentialLR, PolynomialLR and CosineAnnealingLR leave the LR
// unchanged there, and these ops do the same at t = 0 unless their `chain_at_0` parameter is 1. Callers
// that run the initial step themselves (torchsched.lr_scheduler) set it, so that a schedule restarted
// by hand (last_epoch = -1, then step()) gets torch's rule at t = 0 too.

// torch's Python calls the C library's cos (math.cos), so its twins call the platform's cos too (the C
// library's on the host, CUDA's on the device) and give torch's numbers bit for bit on the CPU. The native
// families use ts_cos.
TS_HD double platform_cos(double x) { return cos(x); }

struct TorchCoef {
  double c0, c1;
  int32_t kind;  // 0: the LR stays what it was; 1: prev * c0; above: op-specific (see torch_apply)
};

// Python's float floor division (a // b), which floor(a / b) can miss by one when a / b rounds.
TS_HD double py_floordiv(double a, double b) {
  double mod = fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0.0) != (mod < 0.0))) div -= 1.0;
  if (div == 0.0) return copysign(0.0, a / b);
  double f = floor(div);
  if (div - f > 0.5) f += 1.0;
  return f;
}

// SWALR's anneal function: linear, or (1 - cos(pi x)) / 2.
TS_HD double swa_alpha(double x, double linear) {
  return linear != 0.0 ? x : (1.0 - platform_cos(kPi * x)) / 2.0;
}

// OneCycleLR: the phase that holds t, and its annealing term (cos(pi pct) + 1, or pct when linear).
TS_HD void one_cycle_phase(const double* p, double t, TorchCoef& k) {
  const int32_t phases = (p[1] != 0.0) ? 3 : 2;
  double start = 0.0;
  for (int32_t i = 0; i < phases; ++i) {
    double end = p[2 + i];
    if (t <= end || i == phases - 1) {
      double pct = (t - start) / (end - start);
      k.c0 = (p[0] != 0.0) ? pct : platform_cos(kPi * pct) + 1.0;
      k.kind = 10 + i;
      return;
    }
    start = end;
  }
}

// True for the ops split into torch_coef / torch_apply.
TS_HD bool torch_split(int32_t code) {
  return (code >= OP_TORCH_STEP && code <= OP_TORCH_SWA) || code == OP_TORCH_CYCLIC || code == OP_TORCH_ONE_CYCLE;
}

// The per-step terms. Only the parameters a scheduler shares between its groups are read here:
// p0 (base LR) of COSINE and SWA, p0/p1 of CYCLIC and p5..p7 of ONE_CYCLE are per group.
// `fn` is CyclicLR's scale_fn value when mode 3 (a Python scale_fn) supplies it.
TS_HD void torch_coef(const Op& op, const double* aux, double t, double fn, TorchCoef& k) {
  const double* p = op.p;
  k.c0 = 1.0; k.c1 = 0.0; k.kind = 0;
  switch (op.code) {
    case OP_TORCH_STEP:
      if (t != 0.0 && fmod(t, p[0]) == 0.0) { k.kind = 1; k.c0 = p[1]; }
      return;
    case OP_TORCH_MULTISTEP: {
      int32_t hits = count_passed(aux + op.a, op.b, t, false) - count_passed(aux + op.a, op.b, t, true);
      if (hits != 0) { k.kind = 1; k.c0 = pow(p[0], (double)hits); }
      return;
    }
    case OP_TORCH_CONSTANT:
      if (t == 0.0) { k.kind = 1; k.c0 = p[0]; }
      else if (t == p[1]) { k.kind = 1; k.c0 = 1.0 / p[0]; }
      return;
    case OP_TORCH_LINEAR:
      if (t == 0.0) { k.kind = 1; k.c0 = p[0]; }
      else if (!(t > p[2])) { k.kind = 1; k.c0 = 1.0 + (p[1] - p[0]) / (p[2] * p[0] + (t - 1.0) * (p[1] - p[0])); }
      return;
    case OP_TORCH_EXPONENTIAL:
      if (t != 0.0 || p[1] != 0.0) { k.kind = 1; k.c0 = p[0]; }
      return;
    case OP_TORCH_POLYNOMIAL:
      if ((t != 0.0 || p[2] != 0.0) && !(t > p[0])) {
        k.kind = 1;
        k.c0 = pow((1.0 - t / p[0]) / (1.0 - (t - 1.0) / p[0]), p[1]);
      }
      return;
    case OP_TORCH_COSINE: {
      const double T = p[2];
      if (t == 0.0 && p[3] == 0.0) return;
      if (fmod(t - 1.0 - T, 2.0 * T) == 0.0) { k.kind = 2; k.c0 = 1.0 - platform_cos(kPi / T); }
      else { k.kind = 3; k.c0 = (1.0 + platform_cos(kPi * t / T)) / (1.0 + platform_cos(kPi * (t - 1.0) / T)); }
      return;
    }
    case OP_TORCH_SWA: {
      // t is the scheduler's step count minus one
      const double step = (p[1] == 0.0) ? ts_max(1.0, t) : t;
      const double denom = ts_max(1.0, p[1]);
      k.kind = 4;
      k.c0 = swa_alpha(ts_clamp01((step - 1.0) / denom), p[2]);  // the previous step's alpha
      k.c1 = swa_alpha(ts_clamp01(step / denom), p[2]);
      return;
    }
    case OP_TORCH_CYCLIC: {
      const double cycle = floor(1.0 + t / p[2]);
      const double x = 1.0 + t / p[2] - cycle;
      k.kind = 5;
      k.c0 = (x <= p[3]) ? x / p[3] : (x - 1.0) / (p[3] - 1.0);
      const double arg = (p[6] != 0.0) ? t : cycle;
      if (p[4] == 1.0) k.c1 = 1.0 / pow(2.0, arg - 1.0);
      else if (p[4] == 2.0) k.c1 = pow(p[5], arg);
      else if (p[4] == 3.0) k.c1 = fn;
      else k.c1 = 1.0;
      return;
    }
    case OP_TORCH_ONE_CYCLE:
      one_cycle_phase(p, t, k);
      return;
    default:
      return;
  }
}

TS_HD double torch_apply(const Op& op, const TorchCoef& k, double prev) {
  const double* p = op.p;
  switch (k.kind) {
    case 0: return prev;
    case 1: return prev * k.c0;
    case 2: return prev + (p[0] - p[1]) * k.c0 / 2.0;   // CosineAnnealingLR past a half period
    case 3: return k.c0 * (prev - p[1]) + p[1];         // CosineAnnealingLR
    case 4: {                                            // SWALR: back out the start, re-anneal
      const double initial = (k.c0 == 1.0) ? p[0] : (prev - k.c0 * p[0]) / (1.0 - k.c0);
      return p[0] * k.c1 + initial * (1.0 - k.c1);
    }
    case 5: {                                            // CyclicLR: lr from low, momentum from high
      const double height = (p[1] - p[0]) * k.c0;
      return (p[7] != 0.0) ? p[1] - height * k.c1 : p[0] + height * k.c1;
    }
    default: {                                           // OneCycleLR phase kind - 10
      const int32_t phase = k.kind - 10;
      const bool three = p[1] != 0.0;
      double start, end;
      if (phase == 0) { start = p[5]; end = p[6]; }
      else if (phase == 1) { start = p[6]; end = three ? p[5] : p[7]; }
      else { start = p[5]; end = p[7]; }
      if (p[0] != 0.0) return (end - start) * k.c0 + start;
      return end + (start - end) / 2.0 * k.c0;
    }
  }
}

// The torch rules one group at a time (what eval_leaf uses).
TS_HD double torch_rule(const Op& op, const double* aux, double t, double prev) {
  TorchCoef k;
  torch_coef(op, aux, t, prev, k);
  return torch_apply(op, k, prev);
}

// Closed forms (torch's _get_closed_form_lr and the rules that are functions of the step). `in` is
// ctx.prev: the period for COSINE_CLOSED with p3 = 1 (CosineAnnealingWarmRestarts' T_i, t being T_cur).
TS_HD double torch_closed(const Op& op, double t, double in) {
  const double* p = op.p;
  switch (op.code) {
    case OP_TORCH_STEP_CLOSED: return p[0] * pow(p[2], py_floordiv(t, p[1]));
    case OP_TORCH_CONSTANT_CLOSED: return p[0] * (p[1] + (t >= p[2] ? 1.0 : 0.0) * (1.0 - p[1]));
    case OP_TORCH_LINEAR_CLOSED: return p[0] * (p[1] + (p[2] - p[1]) * ts_min(p[3], t) / p[3]);
    case OP_TORCH_EXPONENTIAL_CLOSED: return p[0] * pow(p[1], t);
    case OP_TORCH_POLYNOMIAL_CLOSED: return p[0] * pow(1.0 - ts_min(p[1], t) / p[1], p[2]);
    case OP_TORCH_COSINE_CLOSED: {
      const double T = (p[3] != 0.0) ? in : p[2];
      return p[1] + (p[0] - p[1]) * (1.0 + platform_cos(kPi * t / T)) / 2.0;
    }
    default: return in;  // OP_TORCH_INPUT
  }
}

// ---- evaluation ------------------------------------------------------------------------------

TS_HD double eval_leaf(const Op& op, const double* aux, double t, const Ctx& ctx) {
  const double* p = op.p;
  switch (op.code) {
    case OP_CONSTANT: return p[0];
    case OP_STEP: return step_decay(p, t);
    case OP_PIECEWISE_CONST: return piecewise_constant(p, aux, op.a, op.b, t);
    case OP_EXPONENTIAL: return exponential_decay(p, t);
    case OP_POLYNOMIAL: return polynomial_decay(p, t);
    case OP_INVERSE_TIME: return inverse_time_decay(p, t);
    case OP_INVERSE_POWER: return inverse_power_decay(p, t);
    case OP_INVERSE_SQRT: return inverse_sqrt_decay(p, t);
    case OP_COSINE: return cosine_decay(p, t);
    case OP_COSINE_RESTARTS: return cosine_restarts(p, t);
    case OP_CYCLIC: return cyclic(p, t);
    case OP_WARMUP: return warmup(p, t);
    case OP_ANNEAL: return anneal(p, t);
    case OP_INTERP: return interpolate(p, aux, op.a, op.b, t);
    case OP_TANH: return tanh_decay(p, t);
    case OP_TORCH_STEP:
    case OP_TORCH_MULTISTEP:
    case OP_TORCH_CONSTANT:
    case OP_TORCH_LINEAR:
    case OP_TORCH_EXPONENTIAL:
    case OP_TORCH_POLYNOMIAL:
    case OP_TORCH_COSINE:
    case OP_TORCH_SWA:
    case OP_TORCH_CYCLIC:
    case OP_TORCH_ONE_CYCLE: return torch_rule(op, aux, t, ctx.prev);
    case OP_TORCH_INPUT:
    case OP_TORCH_STEP_CLOSED:
    case OP_TORCH_CONSTANT_CLOSED:
    case OP_TORCH_LINEAR_CLOSED:
    case OP_TORCH_EXPONENTIAL_CLOSED:
    case OP_TORCH_POLYNOMIAL_CLOSED:
    case OP_TORCH_COSINE_CLOSED: return torch_closed(op, t, ctx.prev);
    default: return 0.0;  // unreachable: programs are validated before they reach here
  }
}

// Walks the program rooted at `root` once, without recursion: the value is the product of the leaves
// it reaches, each on its own clock. Product visits every child; sequence and shift visit one child on
// a shifted clock, and a frame remembers where to resume and which clock to restore.
TS_HD double evaluate_tree(const Op* ops, const double* aux, int32_t root, double t, const Ctx& ctx) {
  int32_t resume_at[kMaxDepth], jump_to[kMaxDepth];
  double saved_t[kMaxDepth];
  int depth = 0;
  int32_t end = root + ops[root].size;
  int32_t i = root;
  double acc = 1.0;
  for (;;) {
    while (depth > 0 && i == resume_at[depth - 1]) {
      --depth;
      i = jump_to[depth];
      t = saved_t[depth];
    }
    if (i >= end) break;
    const Op& op = ops[i];
    switch (op.code) {
      case OP_PRODUCT: ++i; break;
      case OP_SCALE: acc *= op.p[0]; ++i; break;
      case OP_SHIFT: {
        resume_at[depth] = i + op.size; jump_to[depth] = i + op.size; saved_t[depth] = t; ++depth;
        t += op.p[0];
        ++i;
        break;
      }
      case OP_SEQUENCE: {
        int32_t k = count_passed(aux + op.a, op.b - 1, t, false);
        int32_t child = i + 1;
        for (int32_t c = 0; c < k; ++c) child += ops[child].size;
        resume_at[depth] = child + ops[child].size; jump_to[depth] = i + op.size; saved_t[depth] = t; ++depth;
        if (k > 0) t -= aux[op.a + k - 1];
        i = child;
        break;
      }
      default: acc *= eval_leaf(op, aux, t, ctx); ++i; break;
    }
  }
  return acc;
}

// The program's value at t. The two commonest shapes, a bare family and a sequence whose current piece
// is a family (warmup >> decay), skip the general walker and its frames.
TS_HD double evaluate(const Op* ops, const double* aux, int32_t root, double t, const Ctx& ctx) {
  const Op& op = ops[root];
  if (op.code < OP_LEAF_END) return eval_leaf(op, aux, t, ctx);
  if (op.code == OP_SEQUENCE) {
    int32_t k = count_passed(aux + op.a, op.b - 1, t, false);
    int32_t child = root + 1;
    for (int32_t c = 0; c < k; ++c) child += ops[child].size;
    if (ops[child].code < OP_LEAF_END)
      return eval_leaf(ops[child], aux, (k > 0) ? t - aux[op.a + k - 1] : t, ctx);
  }
  return evaluate_tree(ops, aux, root, t, ctx);
}

// ---- ReduceLROnPlateau: the one metric-driven rule; state lives beside the step counter ---------

struct PlateauParams {
  double factor, threshold, eps;
  int64_t patience, cooldown;
  int32_t mode_max;       // 1: the metric should grow
  int32_t threshold_rel;  // 1: relative threshold
};

struct PlateauState {
  double best;
  int64_t num_bad_epochs;
  int64_t cooldown_counter;
  int64_t last_epoch;
};

TS_HD bool plateau_is_better(const PlateauParams& q, double a, double best) {
  if (!q.mode_max && q.threshold_rel) return a < best * (1.0 - q.threshold);
  if (!q.mode_max) return a < best - q.threshold;
  if (q.threshold_rel) return a > best * (q.threshold + 1.0);
  return a > best + q.threshold;
}

// Updates the state with one metric and says whether the LRs are due for a reduction. The caller then
// reduces them and calls plateau_after_reduce: torch's order, in which a reduction that fails (a param
// group added without a min_lr for it) leaves the counters as plateau_update left them.
TS_HD bool plateau_update(const PlateauParams& q, PlateauState& s, double metric) {
  s.last_epoch += 1;
  if (plateau_is_better(q, metric, s.best)) {
    s.best = metric;
    s.num_bad_epochs = 0;
  } else {
    s.num_bad_epochs += 1;
  }
  if (s.cooldown_counter > 0) {
    s.cooldown_counter -= 1;
    s.num_bad_epochs = 0;
  }
  return s.num_bad_epochs > q.patience;
}

TS_HD void plateau_after_reduce(const PlateauParams& q, PlateauState& s) {
  s.cooldown_counter = q.cooldown;
  s.num_bad_epochs = 0;
}

// Updates the state with one metric; returns true when the LRs must be reduced this step.
TS_HD bool plateau_observe(const PlateauParams& q, PlateauState& s, double metric) {
  if (!plateau_update(q, s, metric)) return false;
  plateau_after_reduce(q, s);
  return true;
}

// One group's reduction: true (and the new LR in *out) when torch would store a new LR, that is when
// the drop max(lr * factor, min_lr) is more than eps. max as Python's: the first unless the second is larger.
TS_HD bool plateau_reduced(const PlateauParams& q, double lr, double min_lr, double* out) {
  double scaled = lr * q.factor;
  double new_lr = (min_lr > scaled) ? min_lr : scaled;
  if (!(lr - new_lr > q.eps)) return false;
  *out = new_lr;
  return true;
}

TS_HD double plateau_reduce(const PlateauParams& q, double lr, double min_lr) {
  double new_lr = lr;
  plateau_reduced(q, lr, min_lr, &new_lr);
  return new_lr;
}

}  // namespace torchsched
