#!/usr/bin/env bash
# Packs what the GPU machine runs into .gpu/ (see ../shared/gpu/pack.sh), then prunes the benchmark
# publish to what its sweep tables load: BenchmarkDotNet's code generation, disassembler and ETW
# libraries are only used by the in-process CPU suites, which run here, and would push what travels
# over the 64 MiB limit.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash "$root/../shared/gpu/pack.sh" tests/MoeRuntime.Tests.csproj bench/MoeRuntime.Benchmarks.csproj src/Cli/MoeRuntime.Cli.csproj
bench=.gpu/app/MoeRuntime.Benchmarks
rm -rf "$bench"/Microsoft.CodeAnalysis*.dll "$bench"/Microsoft.Diagnostics.*.dll "$bench"/Iced.dll \
       "$bench"/libcapstone.so "$bench"/amd64 "$bench"/x86 "$bench"/arm64 "$bench"/runtimes/win* "$bench"/runtimes/osx*
find .gpu/app -name '*.pdb' -size +1M -delete
du -sh .gpu | awk '{print ".gpu holds " $1 " after pruning"}'
