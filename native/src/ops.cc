// The compute ops. Each is a few lines over ATen; argument checking and wording live in TypeScript.
#include <atomic>

#include "handle.h"

namespace pdq {

at::Tensor RoundSte(const at::Tensor& x) { return (x.round() - x).detach() + x; }

namespace {
using Unary = at::Tensor (*)(const at::Tensor&);
using Binary = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

const std::vector<std::pair<const char*, Unary>> kUnary = {
    {"neg", [](const at::Tensor& x) { return x.neg(); }},
    {"abs", [](const at::Tensor& x) { return x.abs(); }},
    {"exp", [](const at::Tensor& x) { return x.exp(); }},
    {"log", [](const at::Tensor& x) { return x.log(); }},
    {"sqrt", [](const at::Tensor& x) { return x.sqrt(); }},
    {"floor", [](const at::Tensor& x) { return x.floor(); }},
    {"ceil", [](const at::Tensor& x) { return x.ceil(); }},
    {"round", [](const at::Tensor& x) { return x.round(); }},
    {"roundSte", RoundSte},
    {"sign", [](const at::Tensor& x) { return x.sign(); }},
    {"relu", [](const at::Tensor& x) { return x.relu(); }},
    {"sigmoid", [](const at::Tensor& x) { return x.sigmoid(); }},
    {"tanh", [](const at::Tensor& x) { return x.tanh(); }},
    {"erf", [](const at::Tensor& x) { return x.erf(); }},
    {"logicalNot", [](const at::Tensor& x) { return x.logical_not(); }},
    {"clone", [](const at::Tensor& x) { return x.clone(); }},
    {"detach", [](const at::Tensor& x) { return x.detach(); }},
    {"contiguous", [](const at::Tensor& x) { return x.contiguous(); }},
    {"channelsLast", [](const at::Tensor& x) { return x.contiguous(at::MemoryFormat::ChannelsLast); }},
};

const std::vector<std::pair<const char*, Binary>> kBinary = {
    {"add", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }},
    {"sub", [](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }},
    {"mul", [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }},
    {"div", [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b); }},
    {"pow", [](const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b); }},
    {"maximum", [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }},
    {"minimum", [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }},
    {"lt", [](const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }},
    {"le", [](const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }},
    {"gt", [](const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }},
    {"ge", [](const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }},
    {"eq", [](const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }},
    {"ne", [](const at::Tensor& a, const at::Tensor& b) { return at::ne(a, b); }},
    {"logicalAnd", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }},
    {"matmul", [](const at::Tensor& a, const at::Tensor& b) { return at::matmul(a, b); }},
};

template <typename Table>
Napi::Array Names(Napi::Env env, const Table& table) {
  auto arr = Napi::Array::New(env, table.size());
  for (uint32_t k = 0; k < table.size(); k++) arr.Set(k, table[k].first);
  return arr;
}

template <typename Table>
const auto& Lookup(const Napi::CallbackInfo& info, const Table& table) {
  auto id = static_cast<size_t>(Int(info, 0));
  if (id >= table.size()) throw Napi::RangeError::New(info.Env(), "unknown op id");
  return table[id].second;
}

std::vector<int64_t> Dims(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return {};
  return IntList(info, i);
}
}  // namespace

static Napi::Value UnaryOp(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Lookup(info, kUnary)(Arg(info, 1))); }
static Napi::Value BinaryOp(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Lookup(info, kBinary)(TensorOrScalar(info, 1), TensorOrScalar(info, 2)));
}

// (name, x, dims|null, keepdim, unbiased): dims null or [] reduces over all dimensions.
static Napi::Value Reduce(const Napi::CallbackInfo& info) {
  auto name = Str(info, 0);
  auto& x = Arg(info, 1);
  auto dims = Dims(info, 2);
  bool keep = Bool(info, 3);
  at::Tensor out;
  if (name == "sum") out = dims.empty() ? x.sum() : x.sum(dims, keep);
  else if (name == "mean") out = dims.empty() ? x.mean() : x.mean(dims, keep);
  else if (name == "var") out = dims.empty() ? x.var(Bool(info, 4)) : x.var(at::IntArrayRef(dims), Bool(info, 4), keep);
  else if (name == "amin") out = at::amin(x, dims, keep);
  else if (name == "amax") out = at::amax(x, dims, keep);
  else throw Napi::RangeError::New(info.Env(), "unknown reduction " + name);
  return Wrap(info.Env(), out);
}

static Napi::Value Clamp(const Napi::CallbackInfo& info) {  // (x, lo|null, hi|null): numbers or tensors
  auto& x = Arg(info, 0);
  auto absent = [&](size_t i) { return info[i].IsNull() || info[i].IsUndefined(); };
  if ((absent(1) || info[1].IsNumber()) && (absent(2) || info[2].IsNumber())) {
    c10::optional<at::Scalar> lo, hi;
    if (!absent(1)) lo = Num(info, 1);
    if (!absent(2)) hi = Num(info, 2);
    return Wrap(info.Env(), at::clamp(x, lo, hi));
  }
  auto bound = [&](size_t i) -> c10::optional<at::Tensor> {
    if (absent(i)) return c10::nullopt;
    return TensorOrScalar(info, i).to(x.device());
  };
  return Wrap(info.Env(), at::clamp(x, bound(1), bound(2)));
}

static Napi::Value Where(const Napi::CallbackInfo& info) {  // (cond, a, b)
  auto& c = Arg(info, 0);
  at::Tensor a = TensorOrScalar(info, 1), b = TensorOrScalar(info, 2);
  if (a.dim() == 0 && info[1].IsNumber()) a = a.to(b.dim() ? b.scalar_type() : at::kFloat).to(c.device());
  if (b.dim() == 0 && info[2].IsNumber()) b = b.to(a.scalar_type()).to(c.device());
  return Wrap(info.Env(), at::where(c, a, b));
}

// LibTorch 1.13 sends a 1x1, stride-1 convolution of fewer than 16 images on one intra-op thread (and one of a single
// small image on any number) to its im2col + BLAS kernel rather than oneDNN (ConvParams::use_mkldnn: "THNN is faster
// when single-threaded"). On Debian's reference BLAS that kernel is 10-25x slower, forward and backward, and the
// reconstruction runs on one thread while DC works in the background. Such a convolution is run instead on the
// N*H*W pixels as one-pixel images, which oneDNN takes (the same products and sums, in oneDNN's order).
// On unless the engine benchmark turns it off to time LibTorch's own choice.
static std::atomic<bool> g_pointwiseAsPixels{true};
static Napi::Value SetPointwiseAsPixels(const Napi::CallbackInfo& info) {  // (on) -> previous setting
  return Napi::Boolean::New(info.Env(), g_pointwiseAsPixels.exchange(Bool(info, 0)));
}
static bool PointwiseOnSlowPath(const at::Tensor& x, const at::Tensor& w, const std::vector<int64_t>& stride,
                                const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
  if (!g_pointwiseAsPixels.load() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || x.is_mkldnn() || x.dim() != 4) return false;
  if (!at::globalContext().userEnabledMkldnn()) return false;
  if (w.size(2) != 1 || w.size(3) != 1) return false;
  for (size_t i = 0; i < 2; i++)
    if (stride[i] != 1 || padding[i] != 0 || dilation[i] != 1) return false;
  const int64_t n = x.size(0), pixels = n * x.size(2) * x.size(3);
  const bool slow = (n < 16 && at::get_num_threads() == 1) || (groups == 1 && n == 1 && x.numel() <= 20480);
  return slow && pixels >= 16;
}

static Napi::Value Conv2d(const Napi::CallbackInfo& info) {  // (x, w, b|null, stride, padding, dilation, groups)
  auto& x = Arg(info, 0);
  auto& w = Arg(info, 1);
  const auto stride = IntList(info, 3), padding = IntList(info, 4), dilation = IntList(info, 5);
  const int64_t groups = Int(info, 6);
  if (stride.size() == 2 && padding.size() == 2 && dilation.size() == 2 && PointwiseOnSlowPath(x, w, stride, padding, dilation, groups)) {
    const int64_t n = x.size(0), h = x.size(2), width = x.size(3);
    at::Tensor pixels = x.permute({0, 2, 3, 1}).reshape({n * h * width, x.size(1), 1, 1});
    at::Tensor y = at::conv2d(pixels, w, OptArg(info, 2), stride, padding, dilation, groups).reshape({n, h, width, w.size(0)}).permute({0, 3, 1, 2});
    return Wrap(info.Env(), x.is_contiguous(at::MemoryFormat::ChannelsLast) ? y : y.contiguous());
  }
  return Wrap(info.Env(), at::conv2d(x, w, OptArg(info, 2), stride, padding, dilation, groups));
}
// Debian's LibTorch does its matrix products on the system's generic BLAS (BLAS_INFO=generic), the reference BLAS
// unless another is installed. For a classifier at batch 32 (512 -> 1000) that is 18 ms forward and 46 ms forward +
// backward, against 1.3 and 7 ms as a 1x1 convolution of one-pixel images on oneDNN, and the reconstruction runs the
// classifier in the PD loss's FP tail at every iteration. With such a BLAS, a 2-D linear layer with at least 16 rows
// (oneDNN takes such a convolution on any number of threads; 2 to 15 rows only on more than one, see
// PointwiseOnSlowPath) and a weight of at least 128x128 (below that the two are within a few microseconds) runs as
// that convolution instead. LibTorch builds with MKL or OpenBLAS keep theirs.
// On unless the engine benchmark turns it off to time LibTorch's own choice.
static std::atomic<bool> g_linearAsPointwise{LibTorchBlas() == "generic"};
static Napi::Value SetLinearAsPointwise(const Napi::CallbackInfo& info) {  // (on) -> previous setting
  return Napi::Boolean::New(info.Env(), g_linearAsPointwise.exchange(Bool(info, 0)));
}
static bool LinearOnSlowPath(const at::Tensor& x, const at::Tensor& w) {
  if (!g_linearAsPointwise.load() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat) return false;
  if (x.is_mkldnn() || x.dim() != 2 || w.dim() != 2 || !at::globalContext().userEnabledMkldnn()) return false;
  const int64_t rows = x.size(0);
  return (rows >= 16 || (rows >= 2 && at::get_num_threads() > 1)) && w.numel() >= 128 * 128;
}
static Napi::Value Linear(const Napi::CallbackInfo& info) {  // (x, w, b|null)
  auto& x = Arg(info, 0);
  auto& w = Arg(info, 1);
  if (LinearOnSlowPath(x, w)) {
    const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
    at::Tensor y = at::conv2d(x.reshape({n, in, 1, 1}), w.reshape({out, in, 1, 1}), OptArg(info, 2));
    return Wrap(info.Env(), y.reshape({n, out}));
  }
  return Wrap(info.Env(), at::linear(x, w, OptArg(info, 2)));
}
// (x, weight|null, bias|null, runningMean|null, runningVar|null, training, momentum, eps)
static Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::batch_norm(Arg(info, 0), OptArg(info, 1), OptArg(info, 2), OptArg(info, 3), OptArg(info, 4),
                                         Bool(info, 5), Num(info, 6), Num(info, 7), false));
}
static Napi::Value LayerNorm(const Napi::CallbackInfo& info) {  // (x, normalizedShape, weight?, bias?, eps)
  return Wrap(info.Env(), at::layer_norm(Arg(info, 0), IntList(info, 1), OptArg(info, 2), OptArg(info, 3), Num(info, 4)));
}
static Napi::Value MaxPool2d(const Napi::CallbackInfo& info) {  // (x, kernel, stride, padding, dilation, ceil)
  return Wrap(info.Env(), at::max_pool2d(Arg(info, 0), IntList(info, 1), IntList(info, 2), IntList(info, 3), IntList(info, 4), Bool(info, 5)));
}
static Napi::Value AvgPool2d(const Napi::CallbackInfo& info) {  // (x, kernel, stride, padding, ceil, countIncludePad)
  return Wrap(info.Env(), at::avg_pool2d(Arg(info, 0), IntList(info, 1), IntList(info, 2), IntList(info, 3), Bool(info, 4), Bool(info, 5)));
}
static Napi::Value AdaptiveAvgPool2d(const Napi::CallbackInfo& info) {  // (x, outSize)
  return Wrap(info.Env(), at::adaptive_avg_pool2d(Arg(info, 0), IntList(info, 1)));
}
static Napi::Value Pad(const Napi::CallbackInfo& info) {  // (x, pads as F.pad: last dim first, value)
  return Wrap(info.Env(), at::constant_pad_nd(Arg(info, 0), IntList(info, 1), Num(info, 2)));
}
static Napi::Value Slice(const Napi::CallbackInfo& info) {  // (x, dim, start, end, step)
  return Wrap(info.Env(), Arg(info, 0).slice(Int(info, 1), Int(info, 2), Int(info, 3), Int(info, 4)));
}
static Napi::Value Flip(const Napi::CallbackInfo& info) {  // (x, dims)
  return Wrap(info.Env(), Arg(info, 0).flip(IntList(info, 1)));
}
static Napi::Value IndexSelect(const Napi::CallbackInfo& info) {  // (x, dim, indices)
  auto& x = Arg(info, 0);
  int64_t dim = Int(info, 1);
  auto& idx = Arg(info, 2);
  // Rows of a channels-last tensor are contiguous blocks too: gather them as such, so the result stays
  // channels-last (at::index_select returns NCHW, and the next convolution would copy it back).
  if (dim == 0 && x.dim() == 4 && x.size(1) > 1 && x.suggest_memory_format() == at::MemoryFormat::ChannelsLast &&
      x.is_contiguous(at::MemoryFormat::ChannelsLast)) {
    auto nhwc = x.permute({0, 2, 3, 1});
    auto rows = at::index_select(nhwc.reshape({x.size(0), -1}), 0, idx);
    return Wrap(info.Env(), rows.view({idx.numel(), x.size(2), x.size(3), x.size(1)}).permute({0, 3, 1, 2}));
  }
  return Wrap(info.Env(), at::index_select(x, dim, idx));
}
static Napi::Value Split(const Napi::CallbackInfo& info) {  // (x, sizes, dim) -> [views]
  auto parts = at::split_with_sizes(Arg(info, 0), IntList(info, 1), Int(info, 2));
  auto out = Napi::Array::New(info.Env(), parts.size());
  for (size_t i = 0; i < parts.size(); i++) out.Set(static_cast<uint32_t>(i), Wrap(info.Env(), parts[i]));
  return out;
}
static Napi::Value Cat(const Napi::CallbackInfo& info) {  // ([tensors], dim)
  auto arr = info[0].As<Napi::Array>();
  std::vector<at::Tensor> ts;
  ts.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    ts.push_back(TensorOf(info.Env(), arr.Get(k)));
  }
  return Wrap(info.Env(), at::cat(ts, Int(info, 1)));
}
static Napi::Value Reshape(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Arg(info, 0).reshape(IntList(info, 1))); }
static Napi::Value Permute(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Arg(info, 0).permute(IntList(info, 1))); }
static Napi::Value Expand(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Arg(info, 0).expand(IntList(info, 1))); }
static Napi::Value Flatten(const Napi::CallbackInfo& info) {  // (x, start, end)
  return Wrap(info.Env(), Arg(info, 0).flatten(Int(info, 1), Int(info, 2)));
}
static Napi::Value Softmax(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::softmax(Arg(info, 0), Int(info, 1))); }
static Napi::Value LogSoftmax(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::log_softmax(Arg(info, 0), Int(info, 1))); }
static Napi::Value Hardtanh(const Napi::CallbackInfo& info) {  // (x, min, max)
  return Wrap(info.Env(), at::hardtanh(Arg(info, 0), Num(info, 1), Num(info, 2)));
}
// KL divergence summed over all elements: Σ target·(log target − logInput), as F.kl_div(reduction="sum").
static Napi::Value KlDivSum(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::kl_div(Arg(info, 0), Arg(info, 1), at::Reduction::Sum));
}
static Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::mse_loss(Arg(info, 0), Arg(info, 1), at::Reduction::Mean));
}
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {  // (logits [N,C], targets int64 [N])
  return Wrap(info.Env(), at::nll_loss(at::log_softmax(Arg(info, 0), 1), Arg(info, 1)));
}
static Napi::Value Argmax(const Napi::CallbackInfo& info) {  // (x, dim)
  return Wrap(info.Env(), Arg(info, 0).argmax(Int(info, 1)));
}
static Napi::Value Topk(const Napi::CallbackInfo& info) {  // (x, k, dim) -> indices
  return Wrap(info.Env(), std::get<1>(Arg(info, 0).topk(Int(info, 1), Int(info, 2))));
}
static Napi::Value To(const Napi::CallbackInfo& info) {  // (x, dtype|null, device|null)
  auto& x = Arg(info, 0);
  at::ScalarType st = info[1].IsString() ? DType(Str(info, 1)) : x.scalar_type();
  at::Device dev = info[2].IsString() ? at::Device(Str(info, 2)) : x.device();
  return Wrap(info.Env(), x.to(dev, st));
}

void RegisterOps(Napi::Env env, Napi::Object exports) {
  exports.Set("unaryNames", Names(env, kUnary));
  exports.Set("binaryNames", Names(env, kBinary));
  PDQ_EXPORT("unary", UnaryOp);
  PDQ_EXPORT("binary", BinaryOp);
  PDQ_EXPORT("reduce", Reduce);
  PDQ_EXPORT("clamp", Clamp);
  PDQ_EXPORT("where", Where);
  PDQ_EXPORT("conv2d", Conv2d);
  PDQ_EXPORT("setPointwiseAsPixels", SetPointwiseAsPixels);
  PDQ_EXPORT("setLinearAsPointwise", SetLinearAsPointwise);
  PDQ_EXPORT("linear", Linear);
  PDQ_EXPORT("batchNorm", BatchNorm);
  PDQ_EXPORT("layerNorm", LayerNorm);
  PDQ_EXPORT("maxPool2d", MaxPool2d);
  PDQ_EXPORT("avgPool2d", AvgPool2d);
  PDQ_EXPORT("adaptiveAvgPool2d", AdaptiveAvgPool2d);
  PDQ_EXPORT("pad", Pad);
  PDQ_EXPORT("slice", Slice);
  PDQ_EXPORT("flip", Flip);
  PDQ_EXPORT("indexSelect", IndexSelect);
  PDQ_EXPORT("cat", Cat);
  PDQ_EXPORT("split", Split);
  PDQ_EXPORT("reshape", Reshape);
  PDQ_EXPORT("permute", Permute);
  PDQ_EXPORT("expand", Expand);
  PDQ_EXPORT("flatten", Flatten);
  PDQ_EXPORT("softmax", Softmax);
  PDQ_EXPORT("logSoftmax", LogSoftmax);
  PDQ_EXPORT("hardtanh", Hardtanh);
  PDQ_EXPORT("klDivSum", KlDivSum);
  PDQ_EXPORT("mseLoss", MseLoss);
  PDQ_EXPORT("crossEntropy", CrossEntropy);
  PDQ_EXPORT("argmax", Argmax);
  PDQ_EXPORT("topk", Topk);
  PDQ_EXPORT("to", To);
}

}  // namespace pdq
