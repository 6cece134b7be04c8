"""Profile-guided optimisation helpers (boulder's ``pgo.yaml``): merging LLVM profiles and
the llvm-bolt steps. They are used from a recipe's ``workload``, which this builder refuses
(:mod:`daemon.formats.keys`); they expand so that a recipe can be reviewed."""

ACTIONS: dict[str, str] = {
    "llvm_merge_s1": (
        "llvm-profdata merge --failure-mode=all -output=%(pgo_dir)/ir.profdata "
        "%(pgo_dir)/IR/default*.profraw\n"
        "cp %(pgo_dir)/ir.profdata %(pgo_dir)/combined.profdata"
    ),
    "llvm_merge_s2": (
        "rm %(pgo_dir)/combined.profdata\n"
        "llvm-profdata merge --failure-mode=all -output=%(pgo_dir)/combined.profdata "
        "%(pgo_dir)/ir.profdata %(pgo_dir)/CS/default*.profraw"
    ),
    "bolt_instr": (
        "bolt_instr() {\n"
        '    mv "$1" "$1.orig"\n'
        "    mkdir -p %(pgo_dir)/BOLT\n"
        '    llvm-bolt "$1.orig" -instrument '
        '--instrumentation-file=%(pgo_dir)/BOLT/$(basename "$1") '
        '--instrumentation-file-append-pid "${@:2}" -o "$1"\n'
        "}\n"
        "bolt_instr"
    ),
    "bolt_merge": (
        "bolt_merge() {\n"
        '    merge-fdata %(pgo_dir)/BOLT/$(basename "$1").*.fdata > '
        '%(pgo_dir)/$(basename "$1").fdata\n'
        "}\n"
        "bolt_merge"
    ),
    "bolt_opt": (
        "bolt_opt() {\n"
        '    llvm-bolt "$1.orig" -o "$1.bolt" -data=%(pgo_dir)/$(basename "$1").fdata '
        "-reorder-blocks=ext-tsp -reorder-functions=hfsort+ -split-functions "
        "-split-strategy=cdsplit -plt=all -peepholes=all -split-eh -dyno-stats -icf=1 "
        '-use-gnu-stack -use-old-text -update-debug-sections "${@:2}"\n'
        '    cp "$1.bolt" "$1"\n'
        "}\n"
        "bolt_opt"
    ),
    "bolt_perf": (
        "bolt_perf() {\n"
        "    mkdir -p %(pgo_dir)/BOLT\n"
        '    perf record -F 6000 -e cycles:u -j any,u -o %(pgo_dir)/BOLT/perf.data -- "$@"\n'
        "}\n"
        "bolt_perf"
    ),
    "bolt_perf2bolt": (
        "bolt_perf2bolt() {\n"
        '    cp "$1" "$1.orig"\n'
        "    perf2bolt -ignore-build-id -p %(pgo_dir)/BOLT/perf.data "
        '-o %(pgo_dir)/$(basename "$1").fdata "$1"\n'
        "}\n"
        "bolt_perf2bolt"
    ),
}

DEFINITIONS: dict[str, str] = {}
