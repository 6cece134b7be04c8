"""Perl modules (boulder's ``perl.yaml``): ExtUtils::MakeMaker then ``%make``, or
Module::Build."""

ACTIONS: dict[str, str] = {
    "perl_setup": ('perl Makefile.PL PREFIX="%(prefix)" NO_PACKLIST=1 NO_PERLLOCAL=1 '
                   'INSTALLDIRS=vendor DESTDIR="%(installroot)"'),
    "perl_module_setup": "perl Build.PL installdirs=vendor create_packlist=0",
    "perl_module_build": "perl Build installdirs=vendor create_packlist=0",
    "perl_module_install": 'perl Build destdir="%(installroot)" install',
}

DEFINITIONS: dict[str, str] = {}
