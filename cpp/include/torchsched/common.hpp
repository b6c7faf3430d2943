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

}  // namespace torchsched
