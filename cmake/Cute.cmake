# CUTLASS's CuTe (headers only) for the sm_90a kernels' wgmma and TMA layer (kernels/common/sm90/).
# scripts/setup.sh installs pip's nvidia-cutlass; its headers are under cutlass_library/source/include.
# Found from DELTABENCH_CUTLASS_INCLUDE, else from the Python that holds the LibTorch (DELTABENCH_PYTHON,
# else the project's .venv), else in build/.cutlass (setup.sh's place with your own LibTorch). Without
# them, or without CUDA, no sm_90a kernel is built and `kernels/common/sm90` reports so at run time.
set(DELTABENCH_HAVE_CUTE OFF)
if(DELTABENCH_HAVE_CUDA)
  if(NOT DELTABENCH_CUTLASS_INCLUDE)
    if(DELTABENCH_PROJECT_PYTHON)  # cmake/Dependencies.cmake
      execute_process(
          COMMAND "${DELTABENCH_PROJECT_PYTHON}" -c "import importlib.util as u, os; s = u.find_spec('cutlass_library'); print(os.path.join(s.submodule_search_locations[0], 'source', 'include') if s else '')"
          OUTPUT_VARIABLE _cute_include OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
      if(_rc EQUAL 0 AND _cute_include)
        set(DELTABENCH_CUTLASS_INCLUDE "${_cute_include}")
      endif()
    endif()
    if(NOT DELTABENCH_CUTLASS_INCLUDE AND EXISTS "${CMAKE_BINARY_DIR}/.cutlass/cutlass_library/source/include")
      set(DELTABENCH_CUTLASS_INCLUDE "${CMAKE_BINARY_DIR}/.cutlass/cutlass_library/source/include")
    endif()
  endif()
  if(DELTABENCH_CUTLASS_INCLUDE AND EXISTS "${DELTABENCH_CUTLASS_INCLUDE}/cute/tensor.hpp")
    file(STRINGS "${DELTABENCH_CUTLASS_INCLUDE}/cutlass/version.h" _cutlass_version_lines
         REGEX "^#define CUTLASS_(MAJOR|MINOR|PATCH) [0-9]+")
    string(REGEX REPLACE ".*CUTLASS_MAJOR ([0-9]+).*CUTLASS_MINOR ([0-9]+).*CUTLASS_PATCH ([0-9]+).*" "\\1.\\2.\\3"
           DELTABENCH_CUTLASS_VERSION "${_cutlass_version_lines}")
    if(DELTABENCH_CUTLASS_VERSION VERSION_LESS 3.5)
      message(FATAL_ERROR "deltabench: CUTLASS ${DELTABENCH_CUTLASS_VERSION} at ${DELTABENCH_CUTLASS_INCLUDE} is older "
                          "than 3.5, the first whose CuTe has the SM90 GMMA atoms used here; run scripts/setup.sh "
                          "(nvidia-cutlass 4.2.0.0) or pass -DDELTABENCH_CUTLASS_INCLUDE=<cutlass>/include")
    endif()
    set(DELTABENCH_CUTLASS_INCLUDE "${DELTABENCH_CUTLASS_INCLUDE}" CACHE PATH "CUTLASS's include directory (cute/, cutlass/)" FORCE)
    set(DELTABENCH_HAVE_CUTE ON)
    message(STATUS "deltabench: CuTe from CUTLASS ${DELTABENCH_CUTLASS_VERSION} at ${DELTABENCH_CUTLASS_INCLUDE}: sm_90a wgmma kernels")
  else()
    message(STATUS "deltabench: no CUTLASS headers found (scripts/setup.sh installs nvidia-cutlass, or pass "
                   "-DDELTABENCH_CUTLASS_INCLUDE): no sm_90a wgmma kernels")
  endif()
endif()
