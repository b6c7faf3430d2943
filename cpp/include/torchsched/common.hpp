// torchsched: what every device header shares. Plain functions only: no STL, no exceptions, no
// allocation, no I/O (these headers are compiled by nvcc for the device too).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TS_HD __host__ __device__ inline
#else
#define TS_HD inline
#endif

namespace torchsched {

constexpr double kPi = 3.14159265358979323846;

TS_HD double ts_min(double a, double b) { return a < b ? a : b; }
TS_HD double ts_max(double a, double b) { return a > b ? a : b; }
TS_HD double ts_clamp01(double x) { return ts_min(1.0, ts_max(0.0, x)); }

// ---- the clock ---------------------------------------------------------------------------------
//
// Every formula is a template over its clock: a double (torch's epochs, which may be fractional: the
// drop-in classes), or a Time, a whole step that the engines count in int64. A double holds every whole
// number up to 2**53 and then rounds, so past 2**53 a Time compares, subtracts and divides by whole
// numbers in int64 and stays exact up to the step limit (2**62). Up to 2**53 the two clocks run the very
// same double arithmetic, so their numbers agree bit for bit.

constexpr int64_t kExactSteps = int64_t{1} << 53;  // every whole number up to here is a double exactly

struct Time {
  double x;   // the step as a double (rounded past 2**53)
  int64_t n;  // the step itself; meaningful when whole
  bool whole;
};

TS_HD Time time_at(int64_t step) { return Time{static_cast<double>(step), step, true}; }

// Past 2**53: where Time's int64 arithmetic replaces the double's.
TS_HD bool past_exact(const Time& t) { return t.whole && (t.n > kExactSteps || t.n < -kExactSteps); }
TS_HD bool past_exact(double) { return false; }

// b as an int64 when it is a whole number that int64 holds.
TS_HD bool whole_int64(double b, int64_t* out) {
  if (!(b == floor(b)) || !(b > -9.2e18 && b < 9.2e18)) return false;
  *out = static_cast<int64_t>(b);
  return true;
}

TS_HD double clock(double t) { return t; }
TS_HD double clock(const Time& t) { return t.x; }

// t >= b and t > b, exactly for a whole step against any double.
TS_HD bool at_or_past(double t, double b) { return t >= b; }
TS_HD bool strictly_past(double t, double b) { return t > b; }
TS_HD bool at_or_past(const Time& t, double b) {
  if (!past_exact(t) || !(b > -9.2e18 && b < 9.2e18)) return t.x >= b;  // b far beyond any step, or NaN
  const int64_t fb = static_cast<int64_t>(floor(b));
  return (b == floor(b)) ? t.n >= fb : t.n > fb;
}
TS_HD bool strictly_past(const Time& t, double b) {
  if (!past_exact(t) || !(b > -9.2e18 && b < 9.2e18)) return t.x > b;
  return t.n > static_cast<int64_t>(floor(b));
}

// t - b: exact for a whole step past 2**53 and a whole b; otherwise the double difference.
TS_HD double minus(double t, double b) { return t - b; }
TS_HD Time minus(const Time& t, double b) {
  int64_t ib;
  if (t.whole && whole_int64(b, &ib)) return Time{static_cast<double>(t.n - ib), t.n - ib, true};
  return Time{t.x - b, 0, false};
}
TS_HD double plus(double t, double b) { return t + b; }
TS_HD Time plus(const Time& t, double b) { return minus(t, -b); }

// floor(t / d), d > 0: exact for a whole step past 2**53 and a whole d.
TS_HD double floor_div(double t, double d) { return floor(t / d); }
TS_HD double floor_div(const Time& t, double d) {
  int64_t id;
  if (!past_exact(t) || !whole_int64(d, &id) || id <= 0) return floor(t.x / d);
  int64_t q = t.n / id;
  if (t.n % id != 0 && t.n < 0) --q;
  return static_cast<double>(q);
}
// The remainder t - d * floor(t / d) as a double, exact where floor_div is (the position in a cycle).
TS_HD bool exact_remainder(const Time& t, double d, double* r) {
  int64_t id;
  if (!past_exact(t) || !whole_int64(d, &id) || id <= 0) return false;
  int64_t m = t.n % id;
  if (m < 0) m += id;
  *r = static_cast<double>(m);
  return true;
}
TS_HD bool exact_remainder(double, double, double*) { return false; }

// Number of entries of sorted table[0..n) that are <= t (or < t when strict).
template <typename T>
TS_HD int32_t count_passed(const double* table, int32_t n, const T& t, bool strict) {
  int32_t lo = 0, hi = n;  // binary search: first index whose entry is past t
  while (lo < hi) {
    int32_t mid = (lo + hi) / 2;
    bool passed = strict ? strictly_past(t, table[mid]) : at_or_past(t, table[mid]);
    if (passed) lo = mid + 1; else hi = mid;
  }
  return lo;
}

}  // namespace torchsched
