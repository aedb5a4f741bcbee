// Handles, conversions to and from typed arrays, creation, autograd and engine settings.
#include <ATen/Version.h>
#include "handle.h"
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <cmath>
#include <cstring>
#include <torch/version.h>

namespace pdq {

namespace {
struct Handle {
  at::Tensor t;
};
std::atomic<int64_t> g_live{0};

at::Tensor CreateLike(const Napi::CallbackInfo& info, at::Tensor (*make)(at::IntArrayRef, at::TensorOptions)) {
  auto opts = at::TensorOptions().dtype(DType(Str(info, 1))).device(DeviceArg(info, 2));
  return make(IntList(info, 0), opts);
}
}  // namespace

// A handle is a plain JS object wrapped (napi_wrap) around a heap Handle. free() removes the wrap and deletes the
// Handle at once, so an explicitly freed tensor leaves nothing behind. (An External with a finalizer cannot be
// cancelled, and Node defers finalizers to setImmediate: a synchronous loop of 100k ops then piled up ~200 bytes
// of native bookkeeping per op until the event loop turned.) Handles never freed are still reclaimed by the GC.
static void FinalizeHandle(napi_env, void* data, void*) {
  delete static_cast<Handle*>(data);
  g_live--;
}

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  auto obj = Napi::Object::New(env);
  auto* h = new Handle{std::move(t)};
  if (napi_wrap(env, obj, h, FinalizeHandle, nullptr, nullptr) != napi_ok) {
    delete h;
    throw Napi::Error::New(env, "cannot create a tensor handle");
  }
  g_live++;
  return obj;
}

// arg: the argument's index for the error message, or -1.
static Handle* Unwrap(Napi::Env env, const Napi::Value& v, int arg) {
  if (!v.IsObject())
    throw Napi::TypeError::New(env, (arg < 0 ? std::string("expected value") : "argument " + std::to_string(arg)) + " must be a tensor handle");
  void* data = nullptr;
  if (napi_unwrap(env, v, &data) != napi_ok || data == nullptr) throw Napi::Error::New(env, "tensor was disposed");
  return static_cast<Handle*>(data);
}

at::Tensor& TensorOf(Napi::Env env, const Napi::Value& v) { return Unwrap(env, v, -1)->t; }

at::Tensor& Arg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length()) throw Napi::TypeError::New(info.Env(), "missing tensor argument " + std::to_string(i));
  return Unwrap(info.Env(), info[i], static_cast<int>(i))->t;
}

at::Tensor OptArg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return at::Tensor();
  return Arg(info, i);
}

// Idempotent: freeing a freed handle does nothing.
void Free(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsObject())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a tensor handle");
  void* data = nullptr;
  if (napi_remove_wrap(info.Env(), info[i], &data) != napi_ok || data == nullptr) return;
  delete static_cast<Handle*>(data);
  g_live--;
}

int64_t LiveCount() { return g_live.load(); }

std::vector<int64_t> IntList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = arr.Get(k).As<Napi::Number>().Int64Value();
  return out;
}

double Num(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
int64_t Int(const Napi::CallbackInfo& info, size_t i) { return static_cast<int64_t>(Num(info, i)); }
bool Bool(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() && info[i].ToBoolean().Value(); }
std::string Str(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

at::Tensor TensorOrScalar(const Napi::CallbackInfo& info, size_t i) {
  if (i < info.Length() && info[i].IsNumber()) {
    // A "wrapped number" (as PyTorch does for Python scalars) so that it never widens the other operand's
    // dtype: 0-dim float32 / 4 stays float32 (a plain 0-dim double tensor would promote it to float64).
    auto t = at::scalar_tensor(Num(info, i), at::kDouble);
    t.unsafeGetTensorImpl()->set_wrapped_number(true);
    return t;
  }
  return Arg(info, i);
}

static const std::vector<std::pair<std::string, at::ScalarType>> kDTypes = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"int32", at::kInt}, {"int64", at::kLong},
    {"uint8", at::kByte},    {"int8", at::kChar},      {"bool", at::kBool}};

at::ScalarType DType(const std::string& name) {
  for (auto& [n, t] : kDTypes)
    if (n == name) return t;
  throw std::invalid_argument("unknown dtype " + name);
}
std::string DTypeName(at::ScalarType t) {
  for (auto& [n, s] : kDTypes)
    if (s == t) return n;
  return c10::toString(t);
}

at::Device DeviceArg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return at::Device(at::kCPU);
  return at::Device(Str(info, i));
}

// ---- conversions ----
static Napi::Value FromArray(const Napi::CallbackInfo& info) {
  auto ta = info[0].As<Napi::TypedArray>();
  at::ScalarType st;
  switch (ta.TypedArrayType()) {
    case napi_float32_array: st = at::kFloat; break;
    case napi_float64_array: st = at::kDouble; break;
    case napi_int32_array: st = at::kInt; break;
    case napi_bigint64_array: st = at::kLong; break;
    case napi_uint8_array: st = Bool(info, 3) ? at::kBool : at::kByte; break;
    case napi_int8_array: st = at::kChar; break;
    default: throw Napi::TypeError::New(info.Env(), "unsupported typed array type");
  }
  auto shape = IntList(info, 1);
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (n != static_cast<int64_t>(ta.ElementLength()))
    throw Napi::RangeError::New(info.Env(), "data has " + std::to_string(ta.ElementLength()) +
                                                " elements but shape needs " + std::to_string(n));
  auto* data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  auto t = at::empty(shape, at::TensorOptions().dtype(st));
  std::memcpy(t.data_ptr(), data, ta.ByteLength());
  auto dev = DeviceArg(info, 2);
  return Wrap(info.Env(), dev.is_cpu() ? t : t.to(dev));
}

static Napi::Value ToArray(const Napi::CallbackInfo& info) {
  at::Tensor t = Arg(info, 0).detach().to(at::kCPU).contiguous();
  auto env = info.Env();
  size_t n = t.numel();
  auto buf = Napi::ArrayBuffer::New(env, t.nbytes());
  if (n) std::memcpy(buf.Data(), t.data_ptr(), t.nbytes());
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, n, buf, 0);
    case at::kByte:
    case at::kBool: return Napi::Uint8Array::New(env, n, buf, 0);
    case at::kChar: return Napi::Int8Array::New(env, n, buf, 0);
    default: throw Napi::TypeError::New(env, "cannot read dtype " + DTypeName(t.scalar_type()));
  }
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  auto& t = Arg(info, 0);
  if (t.numel() != 1) throw Napi::RangeError::New(info.Env(), "item() needs a tensor with one element, got " + std::to_string(t.numel()));
  return Napi::Number::New(info.Env(), t.item<double>());
}

static Napi::Value Info(const Napi::CallbackInfo& info) {
  auto& t = Arg(info, 0);
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  auto shape = Napi::Array::New(env, t.dim());
  for (int64_t k = 0; k < t.dim(); k++) shape.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(t.size(k))));
  o.Set("shape", shape);
  o.Set("dtype", DTypeName(t.scalar_type()));
  o.Set("device", t.device().str());
  o.Set("requiresGrad", t.requires_grad());
  const char* layout = t.is_contiguous() ? "contiguous"
                       : t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast) ? "channels-last"
                                                                                           : "strided";
  o.Set("layout", layout);
  return o;
}

static Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto& t = Arg(info, 0);
  auto env = info.Env();
  auto shape = Napi::Array::New(env, t.dim());
  for (int64_t k = 0; k < t.dim(); k++) shape.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(t.size(k))));
  return shape;
}

static Napi::Value FreeFn(const Napi::CallbackInfo& info) {
  Free(info, 0);
  return info.Env().Undefined();
}

static Napi::Value Live(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(LiveCount())); }

// ---- creation ----
static Napi::Value Zeros(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), CreateLike(info, [](at::IntArrayRef s, at::TensorOptions o) { return at::zeros(s, o); }));
}
static Napi::Value Ones(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), CreateLike(info, [](at::IntArrayRef s, at::TensorOptions o) { return at::ones(s, o); }));
}
static Napi::Value Full(const Napi::CallbackInfo& info) {  // (shape, dtype, device, value)
  auto opts = at::TensorOptions().dtype(DType(Str(info, 1))).device(DeviceArg(info, 2));
  return Wrap(info.Env(), at::full(IntList(info, 0), Num(info, 3), opts));
}
static Napi::Value Randn(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), CreateLike(info, [](at::IntArrayRef s, at::TensorOptions o) { return at::randn(s, o); }));
}
static Napi::Value Rand(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), CreateLike(info, [](at::IntArrayRef s, at::TensorOptions o) { return at::rand(s, o); }));
}
static Napi::Value Randint(const Napi::CallbackInfo& info) {  // (shape, dtype, device, low, high)
  auto opts = at::TensorOptions().dtype(DType(Str(info, 1))).device(DeviceArg(info, 2));
  return Wrap(info.Env(), at::randint(Int(info, 3), Int(info, 4), IntList(info, 0), opts));
}
static Napi::Value Bernoulli(const Napi::CallbackInfo& info) {  // (probabilities)
  return Wrap(info.Env(), at::bernoulli(Arg(info, 0)));
}
static Napi::Value Arange(const Napi::CallbackInfo& info) {  // (start, end, step, dtype, device)
  auto opts = at::TensorOptions().dtype(DType(Str(info, 3))).device(DeviceArg(info, 4));
  return Wrap(info.Env(), at::arange(Num(info, 0), Num(info, 1), Num(info, 2), opts));
}

// ---- autograd ----
static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Arg(info, 0).requires_grad_(Bool(info, 1));
  return info.Env().Undefined();
}
static Napi::Value Backward(const Napi::CallbackInfo& info) {  // (t, grad?, retainGraph)
  auto& t = Arg(info, 0);
  at::Tensor g = OptArg(info, 1);
  if (!g.defined() && t.numel() != 1)
    throw Napi::Error::New(info.Env(), "backward() without a gradient needs a scalar, got " + std::to_string(t.numel()) + " elements");
  t.backward(g, Bool(info, 2));
  return info.Env().Undefined();
}
static Napi::Value Grad(const Napi::CallbackInfo& info) {
  auto g = Arg(info, 0).grad();
  return g.defined() ? Wrap(info.Env(), g) : info.Env().Null();
}
static Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
  Arg(info, 0).mutable_grad() = at::Tensor();
  return info.Env().Undefined();
}
static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(Bool(info, 0));
  return Napi::Boolean::New(info.Env(), prev);
}

// ---- in-place updates (optimisers and parameter assignment), outside autograd ----
// One pass of Adam over CPU float tensors of one layout, lr a number or one rate per row (dim 0); false when
// the tensors do not fit (the ATen path then runs). Same operations per element as the ATen path.
static bool AdamFused(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, const at::Tensor& lrRows, double lr,
                      double b1, double b2, double eps, double bc1, double bc2) {
  auto cpuFloat = [](const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; };
  if (!cpuFloat(p) || !cpuFloat(g) || !cpuFloat(m) || !cpuFloat(v) || p.dim() == 0) return false;
  auto fmt = p.suggest_memory_format();
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&p, &g, &m, &v})
    if (!t->is_contiguous(fmt) || t->strides() != p.strides() || t->sizes() != p.sizes()) return false;
  const int64_t rows = p.size(0), per = p.numel() / std::max<int64_t>(rows, 1);
  at::Tensor rates;
  if (lrRows.defined()) {
    bool perRow = lrRows.dim() == p.dim() && lrRows.size(0) == rows && lrRows.numel() == rows;
    if (!cpuFloat(lrRows) || !(perRow || lrRows.numel() == 1)) return false;
    rates = lrRows.contiguous();
  }
  const float* pr = rates.defined() ? rates.data_ptr<float>() : nullptr;
  const bool oneRate = rates.defined() && rates.numel() == 1;
  float *pp = p.data_ptr<float>(), *pm = m.data_ptr<float>(), *pv = v.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  const float fb1 = b1, fb2 = b2, a1 = 1 - b1, a2 = 1 - b2, sbc2 = std::sqrt(bc2), feps = eps;
  at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float step = -(pr ? pr[oneRate ? 0 : r] : static_cast<float>(lr)) / static_cast<float>(bc1);
      for (int64_t i = r * per, e = i + per; i < e; i++) {
        float gi = pg[i];
        float mi = pm[i] * fb1 + a1 * gi;
        float vi = pv[i] * fb2 + a2 * gi * gi;
        pm[i] = mi;
        pv[i] = vi;
        pp[i] += step * (mi / (std::sqrt(vi) / sbc2 + feps));
      }
    }
  });
  return true;
}

// Adam as torch.optim.Adam (no amsgrad): lr is a number or a tensor broadcast against the parameter.
static Napi::Value AdamStep(const Napi::CallbackInfo& info) {  // (p, g, m, v, step, lr, b1, b2, eps, wd)
  at::NoGradGuard ng;
  auto &p = Arg(info, 0), &m = Arg(info, 2), &v = Arg(info, 3);
  at::Tensor g = Arg(info, 1);
  double step = Num(info, 4), b1 = Num(info, 6), b2 = Num(info, 7), eps = Num(info, 8), wd = Num(info, 9);
  if (wd != 0) g = g.add(p, wd);
  double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  if (AdamFused(p, g, m, v, info[5].IsNumber() ? at::Tensor() : Arg(info, 5), info[5].IsNumber() ? Num(info, 5) : 0, b1, b2, eps,
                bc1, bc2))
    return info.Env().Undefined();
  m.mul_(b1).add_(g, 1 - b1);
  v.mul_(b2).addcmul_(g, g, 1 - b2);
  auto denom = (v.sqrt() / std::sqrt(bc2)).add_(eps);
  if (info[5].IsNumber()) {
    p.addcdiv_(m, denom, -Num(info, 5) / bc1);
  } else {
    p.sub_(Arg(info, 5) * (m / denom) / bc1);
  }
  return info.Env().Undefined();
}
// SGD with momentum and dampening 0 as torch.optim.SGD: buf = momentum*buf + g (buf = g at the first step).
static Napi::Value SgdStep(const Napi::CallbackInfo& info) {  // (p, g, buf|null, lr, momentum, wd, first)
  at::NoGradGuard ng;
  auto& p = Arg(info, 0);
  at::Tensor g = Arg(info, 1);
  double lr = Num(info, 3), mom = Num(info, 4), wd = Num(info, 5);
  if (wd != 0) g = g.add(p, wd);
  at::Tensor buf = OptArg(info, 2);
  if (buf.defined() && mom != 0) {
    if (Bool(info, 6)) buf.copy_(g); else buf.mul_(mom).add_(g);
    g = buf;
  }
  p.add_(g, -lr);
  return info.Env().Undefined();
}
static Napi::Value CopyInto(const Napi::CallbackInfo& info) {  // (dst, src)
  at::NoGradGuard ng;
  Arg(info, 0).copy_(Arg(info, 1));
  return info.Env().Undefined();
}

// ---- engine settings ----
std::string LibTorchBlas() {
  const std::string config = at::show_config(), key = "BLAS_INFO=";
  const auto at_key = config.find(key);
  if (at_key == std::string::npos) return "unknown";
  const auto from = at_key + key.size();
  return config.substr(from, config.find_first_of(", \n", from) - from);
}
static Napi::Value Version(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH));
  o.Set("cuda", torch::cuda::is_available());
  o.Set("cudaDevices", static_cast<double>(torch::cuda::device_count()));
  o.Set("threads", at::get_num_threads());
  o.Set("blas", LibTorchBlas());
  return o;
}
static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(static_cast<int>(Int(info, 0)));
  return info.Env().Undefined();
}
// Whether convolutions may use oneDNN (MKL-DNN) kernels on the CPU; returns the previous setting.
static Napi::Value SetMkldnn(const Napi::CallbackInfo& info) {
  bool prev = at::globalContext().userEnabledMkldnn();
  at::globalContext().setUserEnabledMkldnn(Bool(info, 0));
  return Napi::Boolean::New(info.Env(), prev);
}
static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  torch::manual_seed(static_cast<uint64_t>(Int(info, 0)));
  return info.Env().Undefined();
}

// The state of the default generator of a device ("cpu", "cuda:0"), as bytes: what the random draws from now on
// depend on. Setting it back makes the same draws again (a run resumed inside a unit).
static Napi::Value RngState(const Napi::CallbackInfo& info) {
  auto dev = DeviceArg(info, 0);
  at::Generator gen = at::globalContext().defaultGenerator(dev);
  at::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  return Wrap(info.Env(), std::move(state));
}
static Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  auto dev = DeviceArg(info, 0);
  auto state = Arg(info, 1).to(at::kCPU).contiguous();
  if (state.scalar_type() != at::kByte) throw Napi::TypeError::New(info.Env(), "a generator state is a uint8 tensor");
  at::Generator gen = at::globalContext().defaultGenerator(dev);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
  return info.Env().Undefined();
}

// Tensors passed between worker threads: each thread has its own handles, so a tensor leaves one thread as a
// number and is taken (once) by another. Both then hold the same storage; no copy is made.
namespace {
std::mutex g_sharedMutex;
std::unordered_map<int64_t, at::Tensor> g_shared;
int64_t g_nextShared = 1;
}  // namespace
static Napi::Value ShareTensor(const Napi::CallbackInfo& info) {
  auto t = Arg(info, 0).detach();
  std::lock_guard<std::mutex> lock(g_sharedMutex);
  int64_t id = g_nextShared++;
  g_shared.emplace(id, std::move(t));
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}
static Napi::Value TakeShared(const Napi::CallbackInfo& info) {
  int64_t id = Int(info, 0);
  at::Tensor t;
  {
    std::lock_guard<std::mutex> lock(g_sharedMutex);
    auto it = g_shared.find(id);
    if (it == g_shared.end()) throw Napi::Error::New(info.Env(), "no shared tensor " + std::to_string(id));
    t = std::move(it->second);
    g_shared.erase(it);
  }
  return Wrap(info.Env(), std::move(t));
}

void RegisterTensorFns(Napi::Env env, Napi::Object exports) {
  PDQ_EXPORT("fromArray", FromArray);
  PDQ_EXPORT("toArray", ToArray);
  PDQ_EXPORT("item", Item);
  PDQ_EXPORT("info", Info);
  PDQ_EXPORT("shape", Shape);
  PDQ_EXPORT("free", FreeFn);
  PDQ_EXPORT("liveCount", Live);
  PDQ_EXPORT("zeros", Zeros);
  PDQ_EXPORT("ones", Ones);
  PDQ_EXPORT("full", Full);
  PDQ_EXPORT("randn", Randn);
  PDQ_EXPORT("rand", Rand);
  PDQ_EXPORT("randint", Randint);
  PDQ_EXPORT("bernoulli", Bernoulli);
  PDQ_EXPORT("arange", Arange);
  PDQ_EXPORT("setRequiresGrad", SetRequiresGrad);
  PDQ_EXPORT("backward", Backward);
  PDQ_EXPORT("grad", Grad);
  PDQ_EXPORT("zeroGrad", ZeroGrad);
  PDQ_EXPORT("setGradEnabled", SetGradEnabled);
  PDQ_EXPORT("adamStep", AdamStep);
  PDQ_EXPORT("sgdStep", SgdStep);
  PDQ_EXPORT("copyInto", CopyInto);
  PDQ_EXPORT("version", Version);
  PDQ_EXPORT("setThreads", SetThreads);
  PDQ_EXPORT("manualSeed", ManualSeed);
  PDQ_EXPORT("rngState", RngState);
  PDQ_EXPORT("setRngState", SetRngState);
  PDQ_EXPORT("setMkldnn", SetMkldnn);
  PDQ_EXPORT("shareTensor", ShareTensor);
  PDQ_EXPORT("takeShared", TakeShared);
}

}  // namespace pdq
