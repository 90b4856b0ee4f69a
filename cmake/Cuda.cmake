# CUDA is optional: with nvcc present the kernels are compiled for sm_90a (Hopper: wgmma, TMA) and
# sm_80 (Ampere), or the one DELTABENCH_CUDA_ARCHS names; without it the build is CPU-only and the public
# ops use the reference path.
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
    # A machine that runs one of them can build that one alone: an sm_80 binary does not run on Hopper (no
    # PTX is kept), so scripts/device.sh builds 90a only, and the kernels' other TUs compile once, not twice.
    # The sm_90a kernels of kernels/common/sm90 are sm_90a whatever this says.
    set(DELTABENCH_CUDA_ARCHS "90a;80" CACHE STRING "GPU architectures of the kernels: 90a, 80 or both")
    set(DELTABENCH_CUDA_GENCODE)
    foreach(arch IN LISTS DELTABENCH_CUDA_ARCHS)
      if(NOT arch MATCHES "^(90a|80)$")
        message(FATAL_ERROR "DELTABENCH_CUDA_ARCHS takes 90a and 80 (a list of either or both), got \"${arch}\" in "
                            "\"${DELTABENCH_CUDA_ARCHS}\"")
      endif()
      list(APPEND DELTABENCH_CUDA_GENCODE -gencode=arch=compute_${arch},code=sm_${arch})
    endforeach()
    if(NOT DELTABENCH_CUDA_GENCODE)
      message(FATAL_ERROR "DELTABENCH_CUDA_ARCHS is empty: name 90a, 80 or both")
    endif()
    find_package(CUDAToolkit REQUIRED)
    set(DELTABENCH_HAVE_CUDA ON)
    message(STATUS "deltabench: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, kernels for ${DELTABENCH_CUDA_ARCHS}")
  else()
    message(STATUS "deltabench: no nvcc found, CPU-only build")
  endif()
endif()

# Adds the deltabench CUDA flags to a target's .cu sources.
function(deltabench_cuda_target target)
  target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:${DELTABENCH_CUDA_GENCODE} --expt-relaxed-constexpr -lineinfo>)
endfunction()
