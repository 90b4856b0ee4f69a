# Third-party dependencies. LibTorch: a user's own through CMAKE_PREFIX_PATH / Torch_DIR, otherwise
# the one pip installed into the project's .venv (scripts/setup.sh), located with
# torch.utils.cmake_prefix_path. Everything else comes from the system's packages.

# The Python whose packages hold LibTorch and CUTLASS's headers (cmake/Cute.cmake): DELTABENCH_PYTHON, else
# the project's .venv; DELTABENCH_PROJECT_PYTHON is empty where neither is.
set(DELTABENCH_PROJECT_PYTHON "")
if(DELTABENCH_PYTHON)
  set(DELTABENCH_PROJECT_PYTHON "${DELTABENCH_PYTHON}")
elseif(EXISTS "${PROJECT_SOURCE_DIR}/.venv/bin/python")
  set(DELTABENCH_PROJECT_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python")
endif()

if(NOT Torch_DIR AND NOT DEFINED ENV{Torch_DIR})
  find_package(Torch QUIET CONFIG)
  if(NOT Torch_FOUND)
    if(DELTABENCH_PROJECT_PYTHON)
      execute_process(
          COMMAND "${DELTABENCH_PROJECT_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
          OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
      if(_rc EQUAL 0)
        list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
      endif()
    endif()
  endif()
endif()

# Torch's CUDA probe compiles a program to detect the installed GPUs unless it is told the
# architectures; CI has nvcc but no GPU, so name them: ours, DELTABENCH_CUDA_ARCHS (cmake/Cuda.cmake), whose
# -gencode flags Torch then adds to every CUDA file (sm_80 and sm_90a by default).
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0a")
  if(DELTABENCH_HAVE_CUDA)
    set(TORCH_CUDA_ARCH_LIST)
    foreach(arch IN LISTS DELTABENCH_CUDA_ARCHS)  # 90a -> 9.0a, 80 -> 8.0
      string(REGEX REPLACE "^([0-9])([0-9])(a?)$" "\\1.\\2\\3" torch_arch "${arch}")
      list(APPEND TORCH_CUDA_ARCH_LIST "${torch_arch}")
    endforeach()
    list(SORT TORCH_CUDA_ARCH_LIST)  # 8.0 before 9.0a, as the flags always were (a changed line rebuilds every file)
  endif()
endif()
find_package(Torch REQUIRED CONFIG)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "LibTorch not found: run scripts/setup.sh, or pass -DCMAKE_PREFIX_PATH=<libtorch>")
endif()

find_package(CLI11 REQUIRED)
# JSON for metrics files and store exports (Debian: nlohmann-json3-dev; the GPU machine: the same
# package unpacked, passed as nlohmann_json_DIR by scripts/device.sh).
find_package(nlohmann_json 3.10 REQUIRED)
# The results store. Debian: libsqlite3-dev; elsewhere pass SQLite3_INCLUDE_DIR and SQLite3_LIBRARY.
find_package(SQLite3 REQUIRED)
find_package(Threads REQUIRED)
if(DELTABENCH_BENCH)
  find_package(benchmark REQUIRED)
endif()
if(DELTABENCH_TESTS)
  find_package(Catch2 REQUIRED)
  set(DELTABENCH_CATCH2_MAJOR ${Catch2_VERSION_MAJOR})
  message(STATUS "deltabench: Catch2 ${Catch2_VERSION}")
endif()

# One interface target for "uses ATen": its include dirs, flags and libraries, with a precompiled
# header holding the ATen headers every reference op needs (about 12 s of parsing per translation
# unit on a 2-core machine otherwise).
add_library(deltabench_torch INTERFACE)
target_link_libraries(deltabench_torch INTERFACE ${TORCH_LIBRARIES})
# pip's libtorch.so exports its own copy of 64 std::filesystem functions, and the dynamic linker
# binds ours to it when libtorch comes first among our libraries; that copy crashed in
# std::filesystem::remove_all. Naming libstdc++ first makes every program use the real one.
target_link_options(deltabench_torch INTERFACE "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
target_include_directories(deltabench_torch INTERFACE ${TORCH_INCLUDE_DIRS})
separate_arguments(_torch_cxx_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(deltabench_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_torch_cxx_flags}>)

# fmt. LibTorch 2.11 ships fmt 12 headers in its include directory; they shadow the system's fmt
# (Debian 12: fmt 9) in every translation unit that sees torch's includes, and linking the system
# library then fails. So: torch's bundled fmt header-only when it is there, the system's otherwise.
add_library(deltabench_fmt INTERFACE)
set(_torch_fmt "")
foreach(_dir IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS "${_dir}/fmt/format-inl.h")
    set(_torch_fmt "${_dir}")
  endif()
endforeach()
if(_torch_fmt)
  target_compile_definitions(deltabench_fmt INTERFACE FMT_HEADER_ONLY=1)
  target_include_directories(deltabench_fmt INTERFACE ${_torch_fmt})
  message(STATUS "deltabench: fmt header-only from LibTorch (${_torch_fmt})")
else()
  find_package(fmt REQUIRED)
  target_link_libraries(deltabench_fmt INTERFACE fmt::fmt)
endif()
