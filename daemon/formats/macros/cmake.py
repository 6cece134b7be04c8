"""CMake (boulder's ``cmake.yaml``): Ninja by default, release flags left to the tuning
(``-DNDEBUG`` only), no stripping at install (packaging decides), lib/ as the library dir."""

_BUILDDIR = '"${BUILDDIR:-%(builddir)}"'

ACTIONS: dict[str, str] = {
    "cmake": "cmake %(options_cmake_ninja)",
    "cmake_make": "cmake %(options_cmake_make)",
    "cmake_unity": "cmake -DCMAKE_UNITY_BUILD=ON %(options_cmake_ninja)",
    "cmake_build": f'cmake --build {_BUILDDIR} --verbose --parallel "%(jobs)"',
    "cmake_install": f'DESTDIR="%(installroot)" cmake --install {_BUILDDIR} --verbose',
    "cmake_test": (f'ctest --test-dir {_BUILDDIR} --verbose --parallel "%(jobs)" '
                   "--output-on-failure --force-new-ctest-process"),
}

DEFINITIONS: dict[str, str] = {
    "options_cmake": (
        '-B "%(builddir)" -DCMAKE_VERBOSE_MAKEFILE=ON '
        '-DCMAKE_C_FLAGS_RELEASE="-DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="-DNDEBUG" '
        '-DCMAKE_Fortran_FLAGS_RELEASE="-DNDEBUG" -DCMAKE_BUILD_TYPE="Release" '
        '-DCMAKE_INSTALL_DO_STRIP=OFF -DCMAKE_INSTALL_LIBDIR="lib%(libsuffix)" '
        "-DCMAKE_INSTALL_LIBEXECDIR=%(libexecdir) -DCMAKE_INSTALL_PREFIX=%(prefix) "
        "-DCMAKE_LIB_SUFFIX=%(libsuffix)"
    ),
    "options_cmake_ninja": "-G Ninja %(options_cmake)",
    "options_cmake_make": '-G "Unix Makefiles" %(options_cmake)',
}
