#!/usr/bin/env bash
# Baseline for rename + archive: what a makefile-driven pipeline does (make -j with one
# job per core). For every module exported by `rename_archive --export`
# (EXPORT/<module>/*.o + EXPORT/<module>.symmap): one objcopy --redefine-syms process
# per object, then ar rcsD into OUT/<module>.km.a.
#   objcopy_ar.sh EXPORT OUT
set -euo pipefail
if [ $# = 3 ]; then # one module: EXPORT OUT MODULE
    export_dir=$1 out=$2 module=$3
    mkdir -p "$out/$module"
    for object in "$export_dir/$module"/*; do
        objcopy --redefine-syms="$export_dir/$module.symmap" "$object" "$out/$module/$(basename "$object")"
    done
    ar rcsD "$out/$module.km.a" "$out/$module"/*
    exit
fi
export_dir=$1 out=$2
mkdir -p "$out"
find "$export_dir" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort |
    xargs -P "$(nproc)" -I{} "$0" "$export_dir" "$out" {}
