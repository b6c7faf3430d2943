// torchsched: ReduceLROnPlateau, the one metric-driven rule; its state lives beside the step counter.
#pragma once

#include "common.hpp"

namespace torchsched {

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

// One group's reduction: true (and the new LR in *out) when torch would store a new LR, that is when
// the drop max(lr * factor, min_lr) is more than eps. max as Python's: the first unless the second is larger.
TS_HD bool plateau_reduced(const PlateauParams& q, double lr, double min_lr, double* out) {
  double scaled = lr * q.factor;
  double new_lr = (min_lr > scaled) ? min_lr : scaled;
  if (!(lr - new_lr > q.eps)) return false;
  *out = new_lr;
  return true;
}

}  // namespace torchsched
