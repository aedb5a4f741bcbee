{
  "targets": [{
    "target_name": "pdquant_engine",
    "sources": ["src/addon.cc", "src/tensor.cc", "src/ops.cc", "src/fused.cc"],
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "<!@(node scripts/find-libtorch.mjs includes)"
    ],
    "defines": ["NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NAPI_VERSION=8", "_GLIBCXX_USE_CXX11_ABI=<!(node scripts/find-libtorch.mjs abi)"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-fopenmp", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
    "libraries": [
      "-L<!(node scripts/find-libtorch.mjs libdir)",
      "-Wl,-rpath,<!(node scripts/find-libtorch.mjs libdir)",
      "-Wl,--no-as-needed",
      "<!@(node scripts/find-libtorch.mjs libs)",
      "-Wl,--as-needed"
    ]
  }]
}
