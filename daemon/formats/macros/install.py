"""Installing files and patching sources (boulder's ``misc.yaml``: install_*, patch)."""

ACTIONS: dict[str, str] = {
    # Arguments follow: %install_bin FILE...
    "install_bin": "install -Dm00755 -t %(installroot)%(bindir)",
    "install_dir": "install -dm00755",
    "install_exe": "install -Dm00755",
    "install_file": "install -Dm00644",
    # %patch FILE [-pN]: a later -p overrides the default -p1.
    "patch": "patch --batch --remove-empty-files --no-backup-if-mismatch -p1 -i",
}

DEFINITIONS: dict[str, str] = {}
