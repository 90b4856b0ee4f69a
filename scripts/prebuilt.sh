#!/usr/bin/env bash
# Binaries built on this machine for the GPU machine's sm_90a, carried there so that a cold call spends no time on
# the build (145-153 s of a call's 506-562 s in the thirteenth session's calls: a quarter of a session's device
# time). scripts/device_prebuild.sh builds and packs them; scripts/device.sh sources this and uses them where they
# fit the tree it runs and the torch it finds, else builds as before and says why.
#
#   source scripts/prebuilt.sh
#   prebuilt_sources ROOT                 prints the hash of the files the binaries are built from (C++, CUDA and
#                                         CMake files under the source folders; not notes, results, configs or
#                                         scripts): the same tree gives the same hash on either machine, whatever
#                                         git says there (the GPU machine's .git is not the tree that runs)
#   prebuilt_pack ROOT BUILD DEST TORCH FILE...
#                                         FILEs (paths under BUILD: tests/kernels_cuda_tests, deltabench, ...)
#                                         stripped and compressed into DEST (FILE.xz), the Debian-only libraries
#                                         they need into DEST/lib, and DEST/MANIFEST naming the sources' hash, the
#                                         torch they link and each file; prints one line
#   prebuilt_use ROOT BUILD PYTHON TARGET...
#                                         ROOT/.prebuilt's programs of the TARGETs unpacked into BUILD when its
#                                         MANIFEST names this tree's sources, PYTHON's torch and every TARGET (a call
#                                         need carry only the MANIFEST, lib and those programs), and each finds its
#                                         libraries; exports the library path and the source tree they need
#                                         (LD_LIBRARY_PATH, DELTABENCH_SOURCE_DIR, DELTABENCH_KERNEL_CASES). Prints
#                                         one line; returns 0 when they are in place, 1 with the reason when not,
#                                         and 1 silently where nothing was carried.

prebuilt_sources() {
  local root="$1"
  (
    cd "$root" || exit 1
    find CMakeLists.txt cmake apps bench kernels models report sweep tasks train tests -type f \
      \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc' \
      -o -name CMakeLists.txt -o -name '*.cmake' -o -name '*.in' \) -print0 2>/dev/null |
      LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
  )
}

prebuilt_pack() {
  local root="$1" build="$2" dest="$3" torch="$4" file lib
  shift 4
  (($#)) || { echo "prebuilt_pack: no files named"; return 1; }
  rm -rf "$dest"
  mkdir -p "$dest/lib"
  {
    echo "sources $(prebuilt_sources "$root")"
    echo "torch $torch"
  } >"$dest/MANIFEST"
  for file in "$@"; do
    [[ -x "$build/$file" ]] || { echo "prebuilt_pack: $build/$file is not a built program"; return 1; }
    mkdir -p "$dest/$(dirname "$file")"
    strip -o "$dest/$file.tmp" "$build/$file" && xz -T0 -6 -c "$dest/$file.tmp" >"$dest/$file.xz" || {
      echo "prebuilt_pack: packing $build/$file failed"
      return 1
    }
    rm -f "$dest/$file.tmp"
    echo "file $file" >>"$dest/MANIFEST"
    # Google Benchmark's Debian soname (libbenchmark.so.1debian) is not Ubuntu's: carry the library.
    for lib in $(ldd "$build/$file" | awk '/libbenchmark[^ ]*debian/ {print $3}'); do
      cp -L "$lib" "$dest/lib/$(basename "$lib")"
    done
  done
  echo "prebuilt: $# program(s) packed into $dest ($(du -sm "$dest" | cut -f1) MiB), sources $(prebuilt_sources "$root")"
}

prebuilt_use() {
  local root="$1" build="$2" python="$3" dir="$1/.prebuilt" want have torch torch_lib file target missing libs
  shift 3
  [[ -f "$dir/MANIFEST" ]] || return 1
  (($#)) || { echo "prebuilt binaries not used: this mode builds every target, and they hold only some"; return 1; }
  want=$(prebuilt_sources "$root")
  have=$(sed -n 's/^sources //p' "$dir/MANIFEST")
  if [[ "$want" != "$have" ]]; then
    echo "prebuilt binaries not used: built from sources $have, this tree's are $want"
    return 1
  fi
  torch=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)
  have=$(sed -n 's/^torch //p' "$dir/MANIFEST")
  if [[ "$torch" != "$have" ]]; then
    echo "prebuilt binaries not used: built against torch $have, this machine's python has ${torch:-none}"
    return 1
  fi
  torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  libs="$dir/lib:$torch_lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local files=() placed=()
  for target in "$@"; do
    file=$(sed -n "s|^file \(\(.*/\)\{0,1\}$target\)\$|\1|p" "$dir/MANIFEST" | head -n 1)
    [[ -n "$file" ]] || {
      echo "prebuilt binaries not used: they hold no $target"
      return 1
    }
    files+=("$file")
  done
  # The targets' programs alone: a call carries only those it runs (.prebuilt/MANIFEST and their .xz files).
  for file in "${files[@]}"; do
    mkdir -p "$build/$(dirname "$file")"
    placed+=("$build/$file")
    if ! "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$dir/$file.xz" "$build/$file" 2>/dev/null || ! chmod +x "$build/$file"; then
      echo "prebuilt binaries not used: $dir/$file.xz is missing or does not unpack"
      rm -f "${placed[@]}"
      return 1
    fi
    missing=$(LD_LIBRARY_PATH="$libs" ldd "$build/$file" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
    if [[ -n "$missing" ]]; then
      echo "prebuilt binaries not used: $file finds no ${missing% }"
      rm -f "${placed[@]}"  # the build that follows makes them
      return 1
    fi
  done
  export LD_LIBRARY_PATH="$libs" DELTABENCH_SOURCE_DIR="$root" DELTABENCH_KERNEL_CASES="$root/bench/kernel_cases.toml"
  echo "prebuilt binaries in place of the build: ${#files[@]} program(s) for sources $want, torch $torch"
}
