"""Cargo (boulder's ``cargo.yaml``): locked and offline after ``%cargo_fetch``, built for
the target triple in release mode; ``%cargo_install [BIN...]`` installs the named binaries
(default: the recipe's name) from the target directory."""

ACTIONS: dict[str, str] = {
    "cargo_set_environment": (
        'CARGO_BUILD_DEP_INFO_BASEDIR="%(workdir)"; export CARGO_BUILD_DEP_INFO_BASEDIR\n'
        "CARGO_NET_RETRY=5; export CARGO_NET_RETRY\n"
        'CARGO_PROFILE_RELEASE_DEBUG="full"; export CARGO_PROFILE_RELEASE_DEBUG\n'
        'CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO="off"; '
        "export CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO\n"
        'CARGO_PROFILE_RELEASE_LTO="off"; export CARGO_PROFILE_RELEASE_LTO\n'
        'CARGO_PROFILE_RELEASE_STRIP="none"; export CARGO_PROFILE_RELEASE_STRIP'
    ),
    "cargo_fetch": "cargo fetch -v --locked",
    "cargo_vendor": ("mkdir -pv ./.cargo\n"
                     "cargo vendor -v --locked >> ./.cargo/config.toml"),
    "cargo_build": "cargo build %(options_cargo_release)",
    "cargo_install": (
        "cargo_install() {\n"
        '    if [ $# -gt 0 ]; then\n'
        '        for binary in "$@"; do\n'
        '            %install_bin %(cargo_target_dir)/"$binary"\n'
        "        done\n"
        "    else\n"
        "        %install_bin %(cargo_target_dir)/%(name)\n"
        "    fi\n"
        "}\n"
        "cargo_install"
    ),
    "cargo_test": "cargo test %(options_cargo_release) --workspace",
}

DEFINITIONS: dict[str, str] = {
    "cargo_profile": "release",
    "cargo_target_dir": "target/%(target_triple)/%(cargo_profile)",
    "options_cargo": '-v -j "%(jobs)" --frozen --target %(target_triple)',
    "options_cargo_release": "%(options_cargo) --release",
}
