// Fused per-row losses with hand-written backward passes. The composite ATen expressions they replace make
// six to ten passes over a large activation each (mean, var, their backward, the broadcasts); these make one
// forward and one backward pass. CPU float tensors take the loops; anything else takes the composite, so CUDA
// builds stay correct.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <mutex>
#include <cmath>
#include <algorithm>
#include <cstring>

#include "handle.h"

namespace pdq {

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline uint32_t Bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
inline float Float(uint32_t u) {
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

// Bit-mask select: a where m is all ones, b where it is zero (no branch, so loops vectorise).
inline float Select(uint32_t m, float a, float b) { return Float((Bits(a) & m) | (Bits(b) & ~m)); }

// Round half to even in the current (default) rounding mode without a libm call, so loops vectorise: adding and
// subtracting 2^23 leaves the nearest integer for |t| < 2^23; larger floats are integers already.
inline float RoundHalfEven(float t) {
  const float big = 8388608.0f;
  float a = std::fabs(t);
  float r = std::copysign((a + big) - big, t);
  return Select(0u - static_cast<uint32_t>(a < big), r, t);
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

// The loops below are compiled for AVX-512, AVX2 and the baseline, the clone chosen at load time. They are
// branch-free (min/max clamps, selects by bit mask) so that every clone vectorises.
#define PDQ_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// The drop masks of QDrop and of the input drop, without materialising a random tensor (ATen's CPU generator is
// serial and took longer than the convolution it fed): element i's uniform draw is a counter-based hash of
// (seed, i), so a mask is deterministic for a seed and independent of the thread count, and backward passes
// recompute it instead of saving it. DropMask is all ones where the 24-bit draw is below p·2^24, else zero.
inline uint32_t DropMask(uint32_t seedA, uint32_t seedB, uint32_t threshold, int64_t i) {
  uint32_t h = (static_cast<uint32_t>(i) * 0x9E3779B9u + seedA) ^ seedB ^ static_cast<uint32_t>(i >> 32);
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return 0u - static_cast<uint32_t>((h >> 8) < threshold);
}

// A drop mask's seed and threshold; on = false: no drop (every element takes the first operand).
struct Drop {
  uint32_t seedA, seedB, threshold;
  bool on;
};
// p < 0: no drop.
inline Drop MakeDrop(double seedA, double seedB, double p) {
  double t = std::round((p < 0 ? 1 : p) * 16777216.0);
  return {static_cast<uint32_t>(seedA), static_cast<uint32_t>(seedB),
          static_cast<uint32_t>(t < 0 ? 0 : (t > 16777216.0 ? 16777216.0 : t)), p >= 0};
}

// y = a where the mask takes a, else b.
PDQ_VECTOR_CLONES void DropSelectLoop(Drop dr, int64_t i0, int64_t i1, const float* pa, const float* pb, float* py) {
  for (int64_t i = i0; i < i1; i++) py[i] = Select(DropMask(dr.seedA, dr.seedB, dr.threshold, i), pa[i], pb[i]);
}

// The gradient g split: to a where the mask took a, to b elsewhere (either output may be null).
PDQ_VECTOR_CLONES void DropSplitLoop(Drop dr, int64_t i0, int64_t i1, const float* pg, float* pa, float* pb) {
  for (int64_t i = i0; i < i1; i++) {
    uint32_t m = DropMask(dr.seedA, dr.seedB, dr.threshold, i);
    if (pa) pa[i] = Select(m, pg[i], 0.0f);
    if (pb) pb[i] = Select(m, 0.0f, pg[i]);
  }
}

// All ones where lo <= r <= hi.
inline uint32_t InsideMask(float r, float lo, float hi) { return 0u - static_cast<uint32_t>((r >= lo) & (r <= hi)); }

// Each loop body is a template on whether it drops, inlined into the vector clones: one loop per case, as the
// vectoriser does not split a loop on the flag by itself.
#define PDQ_INLINE __attribute__((always_inline)) inline
#define PDQ_KEEP(i) (kDrop ? DropMask(dr.seedA, dr.seedB, dr.threshold, i) : ~0u)

template <bool kDrop>
PDQ_INLINE void FakeQuantBody(const float* __restrict px, float* __restrict py, int64_t i0, int64_t i1, float d, float z,
                              float lo, float hi, const Drop dr) {
  for (int64_t i = i0; i < i1; i++) {
    float c = std::min(std::max(RoundHalfEven(px[i] / d) + z, lo), hi);
    py[i] = Select(PDQ_KEEP(i), (c - z) * d, px[i]);
  }
}
PDQ_VECTOR_CLONES void FakeQuantLoop(const float* px, float* py, int64_t i0, int64_t i1, float d, float z, float lo,
                                     float hi, Drop dr) {
  dr.on ? FakeQuantBody<true>(px, py, i0, i1, d, z, lo, hi, dr) : FakeQuantBody<false>(px, py, i0, i1, d, z, lo, hi, dr);
}

// d/dx: 1 inside the clamp range (inclusive), written as (g·δ)/δ, the composite's rounding; g where not quantized.
template <bool kDrop>
PDQ_INLINE void GradXBody(const float* __restrict px, const float* __restrict pg, float* __restrict pgx, int64_t i0,
                          int64_t i1, float d, float z, float lo, float hi, const Drop dr) {
  for (int64_t i = i0; i < i1; i++) {
    float r = RoundHalfEven(px[i] / d) + z;
    pgx[i] = Select(PDQ_KEEP(i), Float(Bits((pg[i] * d) / d) & InsideMask(r, lo, hi)), pg[i]);
  }
}
PDQ_VECTOR_CLONES void FakeQuantGradXLoop(const float* px, const float* pg, float* pgx, int64_t i0, int64_t i1, float d,
                                          float z, float lo, float hi, Drop dr) {
  dr.on ? GradXBody<true>(px, pg, pgx, i0, i1, d, z, lo, hi, dr) : GradXBody<false>(px, pg, pgx, i0, i1, d, z, lo, hi, dr);
}

// Σ over quantized elements of g·((c − z) − [inside]·x/δ) in double, eight partial sums (one vector lane each).
template <bool kDrop>
PDQ_INLINE double GradDeltaBody(const float* __restrict px, const float* __restrict pg, int64_t i0, int64_t i1, float d,
                                float z, float lo, float hi, const Drop dr) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  auto term = [=](int64_t i) {
    float t = px[i] / d;
    float r = RoundHalfEven(t) + z;
    float c = std::min(std::max(r, lo), hi);
    float f = Float(Bits((c - z) - Float(Bits(t) & InsideMask(r, lo, hi))) & PDQ_KEEP(i));
    return static_cast<double>(pg[i]) * static_cast<double>(f);
  };
  int64_t i = i0;
  for (; i + kLanes <= i1; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += term(i + j);
  double tail = 0;
  for (; i < i1; i++) tail += term(i);
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}
PDQ_VECTOR_CLONES double FakeQuantGradDeltaLoop(const float* px, const float* pg, int64_t i0, int64_t i1, float d, float z,
                                               float lo, float hi, Drop dr) {
  return dr.on ? GradDeltaBody<true>(px, pg, i0, i1, d, z, lo, hi, dr) : GradDeltaBody<false>(px, pg, i0, i1, d, z, lo, hi, dr);
}

// y = (clamp(round(x/δ) + z, qmin, qmax) − z)·δ with round straight-through, δ and z one value each: the
// composite's value exactly, its gradients for x (1 inside the clamp range, inclusive) and δ (LSQ: (c − z) −
// [inside]·x/δ, summed). z gets no gradient. Sums run over fixed blocks, so δ's gradient does not depend on the
// thread count.
class FakeQuant : public torch::autograd::Function<FakeQuant> {
 public:
  // seedA, seedB, p: the QDrop mask (p < 0: no drop, every element quantized).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& delta, const at::Tensor& zero,
                            double qmin, double qmax, double seedA, double seedB, double p) {
    auto x = Dense(x_in);
    const float d = delta.item<float>(), z = zero.item<float>(), lo = qmin, hi = qmax;
    const Drop dr = MakeDrop(seedA, seedB, p);
    auto y = at::empty_like(x);
    const float* px = x.data_ptr<float>();
    float* py = y.data_ptr<float>();
    at::parallel_for(0, x.numel(), 16384, [&](int64_t i0, int64_t i1) { FakeQuantLoop(px, py, i0, i1, d, z, lo, hi, dr); });
    ctx->save_for_backward({x, delta, zero});
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    ctx->saved_data["seedA"] = seedA;
    ctx->saved_data["seedB"] = seedB;
    ctx->saved_data["p"] = p;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &x = saved[0], &delta = saved[1], &zero = saved[2];
    const float d = delta.item<float>(), z = zero.item<float>();
    const float lo = ctx->saved_data["qmin"].toDouble(), hi = ctx->saved_data["qmax"].toDouble();
    const Drop dr = MakeDrop(ctx->saved_data["seedA"].toDouble(), ctx->saved_data["seedB"].toDouble(), ctx->saved_data["p"].toDouble());
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
        if (pgx) FakeQuantGradXLoop(px, pg, pgx, i0, i1, d, z, lo, hi, dr);
        if (wantD) partial[b] = FakeQuantGradDeltaLoop(px, pg, i0, i1, d, z, lo, hi, dr);
      }
    });
    at::Tensor gd;
    if (wantD) {
      double sum = 0;
      for (double v : partial) sum += v;
      gd = at::full(delta.sizes(), sum, delta.options());
    }
    return {gx, gd, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class DropSelect : public torch::autograd::Function<DropSelect> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a_in, const at::Tensor& b_in, double seedA, double seedB,
                            double p) {
    auto a = Dense(a_in);
    auto b = b_in.contiguous(a.suggest_memory_format());
    const Drop dr = MakeDrop(seedA, seedB, p);
    auto y = at::empty_like(a);
    const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
    float* py = y.data_ptr<float>();
    at::parallel_for(0, a.numel(), 16384, [&](int64_t i0, int64_t i1) { DropSelectLoop(dr, i0, i1, pa, pb, py); });
    ctx->saved_data["seedA"] = seedA;
    ctx->saved_data["seedB"] = seedB;
    ctx->saved_data["p"] = p;
    ctx->saved_data["fmtA"] = static_cast<int64_t>(a.suggest_memory_format());
    ctx->saved_data["fmtB"] = static_cast<int64_t>(b_in.suggest_memory_format());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Drop dr = MakeDrop(ctx->saved_data["seedA"].toDouble(), ctx->saved_data["seedB"].toDouble(), ctx->saved_data["p"].toDouble());
    auto fmt = static_cast<at::MemoryFormat>(ctx->saved_data["fmtA"].toInt());
    auto g = grads[0].to(at::kFloat).contiguous(fmt);
    const bool wantA = ctx->needs_input_grad(0), wantB = ctx->needs_input_grad(1);
    at::Tensor ga = wantA ? at::empty_like(g) : at::Tensor(), gb = wantB ? at::empty_like(g) : at::Tensor();
    const float* pg = g.data_ptr<float>();
    float *pa = wantA ? ga.data_ptr<float>() : nullptr, *pb = wantB ? gb.data_ptr<float>() : nullptr;
    at::parallel_for(0, g.numel(), 16384, [&](int64_t i0, int64_t i1) { DropSplitLoop(dr, i0, i1, pg, pa, pb); });
    if (wantB) gb = gb.contiguous(static_cast<at::MemoryFormat>(ctx->saved_data["fmtB"].toInt()));
    return {ga, gb, at::Tensor(), at::Tensor(), at::Tensor()};
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

// A seed for the counter-based drop masks, drawn from the engine's CPU generator (so manualSeed governs it).
static std::pair<double, double> DrawDropSeed() {
  uint64_t seed;
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
  return {static_cast<double>(seed & 0xFFFFFFFFu), static_cast<double>(seed >> 32)};
}

static at::Tensor FakeQuantizeComposite(const at::Tensor& x, const at::Tensor& d, const at::Tensor& z, double lo, double hi) {
  return ((RoundSte(x / d) + z).clamp(lo, hi) - z) * d;
}

static bool FusedFakeQuant(const at::Tensor& x, const at::Tensor& d, const at::Tensor& z) {
  return FastPath(x, 0) && d.numel() == 1 && z.numel() == 1 && d.device().is_cpu() && z.device().is_cpu() &&
         d.scalar_type() == at::kFloat && z.scalar_type() == at::kFloat;
}

// (x, delta, zeroPoint, qmin, qmax) -> fake-quantized x; delta and zeroPoint of one element for the fused path.
static Napi::Value FakeQuantize(const Napi::CallbackInfo& info) {
  auto& x = Arg(info, 0);
  auto &d = Arg(info, 1), &z = Arg(info, 2);
  double lo = Num(info, 3), hi = Num(info, 4);
  if (!FusedFakeQuant(x, d, z)) return Wrap(info.Env(), FakeQuantizeComposite(x, d, z, lo, hi));
  return Wrap(info.Env(), FakeQuant::apply(x, d, z, lo, hi, 0.0, 0.0, -1.0));
}

// (x, delta, zeroPoint, qmin, qmax, p) -> where(u < p, fake-quantized x, x), u uniform per element: QDrop's
// activation quantizer in one pass each way (no random tensor, no second select, no gradient sum for x).
static Napi::Value DropFakeQuantize(const Napi::CallbackInfo& info) {
  auto& x = Arg(info, 0);
  auto &d = Arg(info, 1), &z = Arg(info, 2);
  double lo = Num(info, 3), hi = Num(info, 4), p = Num(info, 5);
  if (!FusedFakeQuant(x, d, z))
    return Wrap(info.Env(), at::where(at::rand_like(x) < p, FakeQuantizeComposite(x, d, z, lo, hi), x));
  auto seed = DrawDropSeed();
  return Wrap(info.Env(), FakeQuant::apply(x, d, z, lo, hi, seed.first, seed.second, p));
}

// (a, b, p) -> where(u < p, a, b) elementwise, u uniform per element (seeded by the engine's generator);
// gradients to a where a was taken and to b elsewhere. a and b of one shape and dtype.
static Napi::Value DropSelectOp(const Napi::CallbackInfo& info) {
  auto &a = Arg(info, 0), &b = Arg(info, 1);
  double p = Num(info, 2);
  if (a.sizes() != b.sizes()) throw Napi::RangeError::New(info.Env(), "dropSelect: the two tensors differ in shape");
  if (!FastPath(a, 0) || b.scalar_type() != at::kFloat || !b.device().is_cpu()) {
    return Wrap(info.Env(), at::where(at::rand_like(a) < p, a, b));
  }
  auto seed = DrawDropSeed();
  return Wrap(info.Env(), DropSelect::apply(a, b, seed.first, seed.second, p));
}

void RegisterFused(Napi::Env env, Napi::Object exports) {
  PDQ_EXPORT("fakeQuantize", FakeQuantize);
  PDQ_EXPORT("rowMomentLoss", RowMomentLoss);
  PDQ_EXPORT("rowSqDist", RowSqDistOp);
  PDQ_EXPORT("dropSelect", DropSelectOp);
  PDQ_EXPORT("dropFakeQuantize", DropFakeQuantize);
}

}  // namespace pdq
