// Fused per-row losses with hand-written backward passes. The composite ATen expressions they replace make
// six to ten passes over a large activation each (mean, var, their backward, the broadcasts); these make one
// forward and one backward pass. CPU float tensors take the loops; anything else takes the composite, so CUDA
// builds stay correct.
#include <ATen/Parallel.h>
#include <cmath>

#include "handle.h"

namespace pdq {

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Round half to even in the current (default) rounding mode without a libm call, so loops vectorise: adding and
// subtracting 2^23 leaves the nearest integer for |t| < 2^23; larger floats are integers already.
inline float RoundHalfEven(float t) {
  const float big = 8388608.0f;
  float a = std::fabs(t);
  return a < big ? std::copysign((a + big) - big, t) : t;
}

bool FastPath(const at::Tensor& x, int64_t minDim = 2) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= minDim;
}

// The memory of x in its own layout (contiguous or channels-last), copied only when it is neither.
at::Tensor Dense(const at::Tensor& x) {
  auto fmt = x.suggest_memory_format();
  return x.is_contiguous(fmt) ? x : x.contiguous(fmt);
}

// Rows of a channels-last tensor hold [positions, channels]; of a contiguous one [channels, positions].
bool IsChannelsLast(const at::Tensor& x) {
  return x.dim() == 4 && x.suggest_memory_format() == at::MemoryFormat::ChannelsLast &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// Σ_c (m_c − μ_bc)² + (s_c − σ_bc)² per row b, with μ, σ² the (unbiased) mean and variance of x[b, c, ...] and
// σ = sqrt(σ² + eps). m and s are constants (no gradient).
at::Tensor MomentLossComposite(const at::Tensor& x, const at::Tensor& m, const at::Tensor& s, double eps) {
  auto b = x.size(0), c = x.size(1);
  auto r = x.reshape({b, c, -1});
  auto mu = r.mean({2});
  auto sigma = (r.var({2}, true) + eps).sqrt();
  auto dm = m.detach().reshape({1, c}) - mu;
  auto ds = s.detach().reshape({1, c}) - sigma;
  return (dm * dm).sum({1}) + (ds * ds).sum({1});
}

class MomentLoss : public torch::autograd::Function<MomentLoss> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& m_in, const at::Tensor& s_in,
                            double eps) {
    bool cl = IsChannelsLast(input);
    auto x = cl ? input : input.contiguous();
    auto m = m_in.detach().to(at::kFloat).contiguous(), s = s_in.detach().to(at::kFloat).contiguous();
    const int64_t B = x.size(0), C = x.size(1), N = x.numel() / (B * C);
    auto mu = at::empty({B, C}, x.options()), sigma = at::empty({B, C}, x.options());
    auto out = at::empty({B}, x.options());
    const float* px = x.data_ptr<float>();
    const float *pm = m.data_ptr<float>(), *ps = s.data_ptr<float>();
    float *pmu = mu.data_ptr<float>(), *psig = sigma.data_ptr<float>(), *po = out.data_ptr<float>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      std::vector<double> acc(C), acc2(C);
      for (int64_t b = b0; b < b1; b++) {
        const float* row = px + b * C * N;
        std::fill(acc.begin(), acc.end(), 0.0);
        std::fill(acc2.begin(), acc2.end(), 0.0);
        if (cl) {  // row is [N, C]
          for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) acc[c] += row[n * C + c];
          for (int64_t c = 0; c < C; c++) acc[c] /= N;
          for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
              double d = row[n * C + c] - acc[c];
              acc2[c] += d * d;
            }
        } else {  // row is [C, N]
          for (int64_t c = 0; c < C; c++) {
            const float* v = row + c * N;
            double sum = 0;
            for (int64_t n = 0; n < N; n++) sum += v[n];
            double mean = sum / N, sq = 0;
            for (int64_t n = 0; n < N; n++) {
              double d = v[n] - mean;
              sq += d * d;
            }
            acc[c] = mean;
            acc2[c] = sq;
          }
        }
        double loss = 0;
        for (int64_t c = 0; c < C; c++) {
          double var = N > 1 ? acc2[c] / (N - 1) : NAN;
          double sd = std::sqrt(var + eps);
          pmu[b * C + c] = static_cast<float>(acc[c]);
          psig[b * C + c] = static_cast<float>(sd);
          double dm = pm[c] - acc[c], ds = ps[c] - sd;
          loss += dm * dm + ds * ds;
        }
        po[b] = static_cast<float>(loss);
      }
    });
    ctx->save_for_backward({x, m, s, mu, sigma});
    ctx->saved_data["cl"] = cl;
    return out;
  }

  // dL_b/dx = g_b · (A_bc + K_bc · (x − μ_bc)), A = −2(m − μ)/N, K = −2(s − σ) / (σ (N − 1)).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &x = saved[0], &m = saved[1], &s = saved[2], &mu = saved[3], &sigma = saved[4];
    bool cl = ctx->saved_data["cl"].toBool();
    auto g = grads[0].to(at::kFloat).contiguous();
    const int64_t B = x.size(0), C = x.size(1), N = x.numel() / (B * C);
    auto gx = cl ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::empty_like(x, at::MemoryFormat::Contiguous);
    const float *px = x.data_ptr<float>(), *pm = m.data_ptr<float>(), *ps = s.data_ptr<float>();
    const float *pmu = mu.data_ptr<float>(), *psig = sigma.data_ptr<float>(), *pg = g.data_ptr<float>();
    float* pgx = gx.data_ptr<float>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> A(C), K(C), M(C);
      for (int64_t b = b0; b < b1; b++) {
        for (int64_t c = 0; c < C; c++) {
          float mean = pmu[b * C + c], sd = psig[b * C + c];
          A[c] = pg[b] * (-2.0f * (pm[c] - mean) / N);
          K[c] = pg[b] * (-2.0f * (ps[c] - sd) / (sd * (N - 1)));
          M[c] = mean;
        }
        const float* row = px + b * C * N;
        float* out = pgx + b * C * N;
        if (cl) {
          for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) out[n * C + c] = A[c] + K[c] * (row[n * C + c] - M[c]);
        } else {
          for (int64_t c = 0; c < C; c++)
            for (int64_t n = 0; n < N; n++) out[c * N + n] = A[c] + K[c] * (row[c * N + n] - M[c]);
        }
      }
    });
    return {gx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Σ over everything but dim 0 of (x − y)², one value per row. y is a constant (no gradient).
class RowSqDist : public torch::autograd::Function<RowSqDist> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& y_in) {
    auto x = Dense(x_in), y = y_in.detach().contiguous(x.suggest_memory_format());
    const int64_t B = x.size(0), R = x.numel() / B;
    auto out = at::empty({B}, x.options());
    const float *px = x.data_ptr<float>(), *py = y.data_ptr<float>();
    float* po = out.data_ptr<float>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        double sum = 0;
        const float *a = px + b * R, *c = py + b * R;
        for (int64_t i = 0; i < R; i++) {
          float d = a[i] - c[i];
          sum += d * d;
        }
        po[b] = static_cast<float>(sum);
      }
    });
    ctx->save_for_backward({x, y});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &x = saved[0], &y = saved[1];
    auto g = grads[0].to(at::kFloat).contiguous();
    const int64_t B = x.size(0), R = x.numel() / B;
    auto gx = at::empty_like(x);
    const float *px = x.data_ptr<float>(), *py = y.data_ptr<float>(), *pg = g.data_ptr<float>();
    float* pgx = gx.data_ptr<float>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        float k = 2.0f * pg[b];
        const float *a = px + b * R, *c = py + b * R;
        float* o = pgx + b * R;
        for (int64_t i = 0; i < R; i++) o[i] = k * (a[i] - c[i]);
      }
    });
    return {gx, at::Tensor()};
  }
};

// y = (clamp(round(x/δ) + z, qmin, qmax) − z)·δ with round straight-through, δ and z one value each: the
// composite's value exactly, its gradients for x (1 inside the clamp range, inclusive) and δ (LSQ: (c − z) −
// [inside]·x/δ, summed). z gets no gradient. Sums run over fixed blocks, so δ's gradient does not depend on the
// thread count.
class FakeQuant : public torch::autograd::Function<FakeQuant> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& delta, const at::Tensor& zero,
                            double qmin, double qmax) {
    auto x = Dense(x_in);
    const float d = delta.item<float>(), z = zero.item<float>(), lo = qmin, hi = qmax;
    auto y = at::empty_like(x);
    const float* px = x.data_ptr<float>();
    float* py = y.data_ptr<float>();
    at::parallel_for(0, x.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) {
        float c = RoundHalfEven(px[i] / d) + z;
        c = c < lo ? lo : (c > hi ? hi : c);
        py[i] = (c - z) * d;
      }
    });
    ctx->save_for_backward({x, delta, zero});
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &x = saved[0], &delta = saved[1], &zero = saved[2];
    const float d = delta.item<float>(), z = zero.item<float>();
    const float lo = ctx->saved_data["qmin"].toDouble(), hi = ctx->saved_data["qmax"].toDouble();
    auto g = grads[0].contiguous(x.suggest_memory_format());
    const bool wantX = ctx->needs_input_grad(0), wantD = ctx->needs_input_grad(1);
    at::Tensor gx = wantX ? at::empty_like(x) : at::Tensor();
    const float *px = x.data_ptr<float>(), *pg = g.data_ptr<float>();
    float* pgx = wantX ? gx.data_ptr<float>() : nullptr;
    const int64_t n = x.numel(), blocks = std::min<int64_t>(64, std::max<int64_t>(1, n / 4096));
    std::vector<double> partial(blocks, 0.0);
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        const int64_t i0 = n * b / blocks, i1 = n * (b + 1) / blocks;
        double acc = 0;
        for (int64_t i = i0; i < i1; i++) {
          float t = px[i] / d;
          float r = RoundHalfEven(t) + z;
          bool inside = r >= lo && r <= hi;
          float c = r < lo ? lo : (r > hi ? hi : r);
          float gi = pg[i];
          if (pgx) pgx[i] = inside ? (gi * d) / d : 0.0f;
          if (wantD) acc += static_cast<double>(gi) * ((c - z) - (inside ? t : 0.0f));
        }
        partial[b] = acc;
      }
    });
    at::Tensor gd;
    if (wantD) {
      double sum = 0;
      for (double v : partial) sum += v;
      gd = at::full(delta.sizes(), sum, delta.options());
    }
    return {gx, gd, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

// (x [B, C, ...], m [C], s [C], eps) -> [B]
static Napi::Value RowMomentLoss(const Napi::CallbackInfo& info) {
  auto& x = Arg(info, 0);
  auto &m = Arg(info, 1), &s = Arg(info, 2);
  double eps = Num(info, 3);
  if (!FastPath(x)) return Wrap(info.Env(), MomentLossComposite(x, m, s, eps));
  return Wrap(info.Env(), MomentLoss::apply(x, m, s, eps));
}

// (x [B, ...], y same shape) -> [B]
static Napi::Value RowSqDistOp(const Napi::CallbackInfo& info) {
  auto &x = Arg(info, 0), &y = Arg(info, 1);
  if (!FastPath(x) || y.sizes() != x.sizes() || y.scalar_type() != at::kFloat || !y.device().is_cpu()) {
    auto d = x - y.detach();
    return Wrap(info.Env(), (d * d).reshape({x.size(0), -1}).sum({1}));
  }
  return Wrap(info.Env(), RowSqDist::apply(x, y));
}

// (x, delta, zeroPoint, qmin, qmax) -> fake-quantized x; delta and zeroPoint of one element for the fused path.
static Napi::Value FakeQuantize(const Napi::CallbackInfo& info) {
  auto& x = Arg(info, 0);
  auto &d = Arg(info, 1), &z = Arg(info, 2);
  double lo = Num(info, 3), hi = Num(info, 4);
  bool scalarParams = d.numel() == 1 && z.numel() == 1 && d.device().is_cpu() && z.device().is_cpu() &&
                      d.scalar_type() == at::kFloat && z.scalar_type() == at::kFloat;
  if (!FastPath(x, 0) || !scalarParams) {
    return Wrap(info.Env(), ((RoundSte(x / d) + z).clamp(lo, hi) - z) * d);
  }
  return Wrap(info.Env(), FakeQuant::apply(x, d, z, lo, hi));
}

void RegisterFused(Napi::Env env, Napi::Object exports) {
  PDQ_EXPORT("fakeQuantize", FakeQuantize);
  PDQ_EXPORT("rowMomentLoss", RowMomentLoss);
  PDQ_EXPORT("rowSqDist", RowSqDistOp);
}

}  // namespace pdq
