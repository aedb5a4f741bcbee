// Entry point of the pdquant engine addon: a thin layer of tensor primitives over LibTorch.
#include "handle.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  pdq::RegisterTensorFns(env, exports);
  pdq::RegisterOps(env, exports);
  pdq::RegisterFused(env, exports);
  return exports;
}

NODE_API_MODULE(pdquant_engine, Init)
