// Opaque tensor handles and argument helpers shared by the addon's source files.
#pragma once
#include <napi.h>
#include <torch/torch.h>
#include <string>
#include <vector>

namespace pdq {

// Returns a JS handle that owns `t` until free() or garbage collection.
Napi::Value Wrap(Napi::Env env, at::Tensor t);
// The tensor behind argument i; throws a TypeError if it is not a live handle.
at::Tensor& Arg(const Napi::CallbackInfo& info, size_t i);
// The tensor behind a JS value (e.g. an array element).
at::Tensor& TensorOf(Napi::Env env, const Napi::Value& v);
// An undefined tensor where argument i is null/undefined.
at::Tensor OptArg(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> IntList(const Napi::CallbackInfo& info, size_t i);
double Num(const Napi::CallbackInfo& info, size_t i);
int64_t Int(const Napi::CallbackInfo& info, size_t i);
bool Bool(const Napi::CallbackInfo& info, size_t i);
std::string Str(const Napi::CallbackInfo& info, size_t i);
// A tensor argument, or a number turned into a 0-dim tensor (type promotion as for a Python scalar).
at::Tensor TensorOrScalar(const Napi::CallbackInfo& info, size_t i);
at::ScalarType DType(const std::string& name);
std::string DTypeName(at::ScalarType t);
at::Device DeviceArg(const Napi::CallbackInfo& info, size_t i);
int64_t LiveCount();
void Free(const Napi::CallbackInfo& info, size_t i);

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
// Rethrows LibTorch errors as JS errors (message without the C++ backtrace).
template <Fn F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Napi::Error::New(info.Env(), msg);
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// Forward round, gradient 1 (straight-through estimator).
at::Tensor RoundSte(const at::Tensor& x);
// The BLAS LibTorch was built with, as its build configuration names it (generic, mkl, open, ...; unknown if unnamed).
std::string LibTorchBlas();

void RegisterTensorFns(Napi::Env env, Napi::Object exports);
void RegisterOps(Napi::Env env, Napi::Object exports);
void RegisterFused(Napi::Env env, Napi::Object exports);

}  // namespace pdq

#define PDQ_EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, ::pdq::Guarded<fn>, name))
