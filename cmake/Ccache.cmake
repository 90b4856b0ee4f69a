# ccache for C++ and CUDA. Precompiled headers change the preprocessed text ccache hashes, so it
# needs the pch_defines and time_macros sloppiness to hit at all (ccache manual, "Precompiled headers").
#
# CUDA runs in depend mode (the source and every header nvcc's -MD lists, hashed as they are): ccache's
# preprocessor mode runs `nvcc -E`, which gives the host pass alone, where code under `#if __CUDA_ARCH__`
# (every kernel body) is absent. An edit inside a kernel that moved no line then hashed like the version
# before it, and ccache returned that version's object: a stale kernel (2026-12-06, chunk_ut_bwd.cu: a
# branch disabled in the source, 7,368 FFMA in the cached object against 1,288 in a fresh compile). The
# compiler check hashes `nvcc --version`, not nvcc's mtime as by default, so that no object cached before
# this change, under the old hashing, can be found again.
find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(_sloppiness CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env ${_sloppiness} ${CCACHE_PROGRAM})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env ${_sloppiness} CCACHE_DEPEND=true
      "CCACHE_COMPILERCHECK=%compiler% --version" ${CCACHE_PROGRAM})
  message(STATUS "deltabench: ccache ${CCACHE_PROGRAM} (CUDA in depend mode)")
endif()
