# CUDA is optional: with nvcc present the kernels are compiled for sm_90a (Hopper: wgmma, TMA) and
# sm_80 (Ampere); without it the build is CPU-only and the public ops use the reference path.
set(DELTABENCH_HAVE_CUDA OFF)
if(DELTABENCH_CUDA)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # The architectures go in as explicit -gencode flags: CMake before 3.28 cannot spell "90a".
    set(CMAKE_CUDA_ARCHITECTURES OFF)
    enable_language(CUDA)
    # CMake 3.25 (Debian 12) has no CUDA20 dialect for nvcc 13; the .cu files need only C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(DELTABENCH_CUDA_GENCODE
        -gencode=arch=compute_90a,code=sm_90a
        -gencode=arch=compute_80,code=sm_80)
    find_package(CUDAToolkit REQUIRED)
    set(DELTABENCH_HAVE_CUDA ON)
    message(STATUS "deltabench: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, kernels for sm_90a and sm_80")
  else()
    message(STATUS "deltabench: no nvcc found, CPU-only build")
  endif()
endif()

# Adds the deltabench CUDA flags to a target's .cu sources.
function(deltabench_cuda_target target)
  target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:${DELTABENCH_CUDA_GENCODE} --expt-relaxed-constexpr -lineinfo>)
endfunction()
