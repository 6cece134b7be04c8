"""Odds and ends of boulder's ``misc.yaml``: DocBook catalogues, GTK icon caches."""

ACTIONS: dict[str, str] = {
    "export_docbook_catalogs": (
        "XML_CATALOG_FILES=\"$(find /usr/share/defaults/docbook -type f -name catalog "
        "-printf 'file://%%p ')\"; export XML_CATALOG_FILES"
    ),
    "gtk_update_icon_cache": (
        "for i in %(installroot)%(datadir)/icons/*/; do\n"
        '    gtk-update-icon-cache -f "$i"\n'
        "done"
    ),
}

DEFINITIONS: dict[str, str] = {}
