"""Ruby gems: build the gem from its gemspec, install it into the system's gem directory
under the install root, binaries in ``%(bindir)``, without fetching dependencies."""

ACTIONS: dict[str, str] = {
    "gem_build": "gem build ./*.gemspec",
    "gem_install": (
        'gem install --local --ignore-dependencies --no-document --install-dir '
        '"%(installroot)$(ruby -e \'print Gem.default_dir\')" '
        '--bindir "%(installroot)%(bindir)" ./*.gem'
    ),
}

DEFINITIONS: dict[str, str] = {}
