"""Qt and KDE (boulder's ``qt-kde.yaml``): qmake for Qt 5, CMake presets for Qt 6 and KDE
Frameworks 6, links for Qt's user-facing tools, pre-compiled QML caches."""

_CCACHE = '[[ " ${PATH} " =~ "ccache" ]]'

ACTIONS: dict[str, str] = {
    "qmake_qt5": ('_ccache_arg=""\n'
                  f'if {_CCACHE}; then _ccache_arg="CONFIG+=ccache"; fi\n'
                  "qmake %(options_qmake_qt5) ${_ccache_arg}"),
    "cmake_qt6": ('_ccache_arg="-DQT_USE_CCACHE=OFF"\n'
                  f'if {_CCACHE}; then _ccache_arg="-DQT_USE_CCACHE=ON"; fi\n'
                  "cmake %(options_cmake_qt6) ${_ccache_arg}"),
    "cmake_kf6": "cmake %(options_cmake_kf6)",
    "qt_user_facing_links": (
        "qt_user_facing_links() {\n"
        "    %install_dir %(installroot)/%(bindir)\n"
        "    pushd %(installroot)\n"
        "    while read _line; do\n"
        "        read -r _source _dest <<< ${_line}\n"
        "        ln -srv %(installroot)/${_source} %(installroot)/${_dest}\n"
        "    done < %(workdir)/%(builddir)/user_facing_tool_links.txt\n"
        "    popd\n"
        "}\n"
        "qt_user_facing_links"
    ),
    "qml_cache_qt5": (
        "qml_cache_qt5() {\n"
        "    pushd %(installroot)\n"
        "    find . -type f -name '*.qml' -print0 | while IFS= read -r -d '' i; do\n"
        '        [ -e "${i}c" ] || qmlcachegen -o "${i}c" "${i}" "$@"\n'
        "    done\n"
        "    popd\n"
        "}\n"
        "qml_cache_qt5"
    ),
    "qml_cache_qt6": (
        "qml_cache_qt6() {\n"
        "    pushd %(installroot)\n"
        "    find . -type f -name '*.qml' -print0 | while IFS= read -r -d '' i; do\n"
        '        [ -e "${i}c" ] || qmlcachegen6 -o "${i}c" "${i}" "$@"\n'
        "    done\n"
        "    popd\n"
        "}\n"
        "qml_cache_qt6"
    ),
}

DEFINITIONS: dict[str, str] = {
    "options_qmake_qt5": ('CONFIG+=release QMAKE_CFLAGS_RELEASE="${CFLAGS}" '
                          'QMAKE_CXXFLAGS_RELEASE="${CXXFLAGS}" QMAKE_LFLAGS="${LDFLAGS}"'),
    "options_cmake_qt6": (
        "%(options_cmake_ninja) -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=ON "
        "-DCMAKE_MESSAGE_LOG_LEVEL=STATUS -DINSTALL_ARCHDATADIR=%(libdir)/qt6 "
        "-DINSTALL_BINDIR=%(libdir)/qt6/bin -DINSTALL_DATADIR=share/qt6 "
        "-DINSTALL_DOCDIR=share/doc/qt6 -DINSTALL_EXAMPLESDIR=%(libdir)/qt6/examples "
        "-DINSTALL_INCLUDEDIR=include/qt6 -DINSTALL_LIBDIR=%(libdir) "
        "-DINSTALL_LIBEXECDIR=%(libdir)/qt6 -DINSTALL_MKSPECSDIR=%(libdir)/qt6/mkspecs "
        "-DINSTALL_PUBLICBINDIR=usr/bin -DQT_BUILD_EXAMPLES=ON -DQT_FEATURE_rpath=OFF"
    ),
    "options_cmake_kf6": (
        "%(options_cmake_ninja) -DCMAKE_INSTALL_LIBEXECDIR_kf6:PATH=%(libdir)/kf6 "
        "-DKDE_INSTALL_LIBEXECDIR:PATH=%(libdir)/kf6 "
        "-DKDE_INSTALL_USE_QT_SYS_PATHS:BOOL=ON -DBUILD_QCH=ON -DBUILD_TESTING=OFF"
    ),
}
