"""``gigapatch plugins``: installed plugins, their versions, hooks and domains."""

from gigapatch.cli.app import app, rich_console


@app.command()
def plugins() -> None:
    """List installed plugins, their versions, hooks and domains."""
    from rich.table import Table

    from gigapatch.plugin.manager import list_domains, list_plugins

    t = Table(title="plugins (entry-point group 'gigapatch')", title_justify="left")
    for col in ("name", "module", "version", "hooks"):
        t.add_column(col)
    for p in list_plugins():
        t.add_row(p["name"], p["module"], p["version"],
                  ", ".join(h.removeprefix("gigapatch_") for h in p["hooks"]) or "-")
    out = rich_console(stderr=False)
    out.print(t)
    d = Table(title="domains", title_justify="left")
    d.add_column("domain")
    d.add_column("description")
    for name, info_ in sorted(list_domains().items()):
        d.add_row(name, info_.get("description", ""))
    out.print(d)
    for name, info_ in sorted(list_domains().items()):
        model = info_.get("settings")
        if model is None:
            continue
        s = Table(title=f"plugin.{name} settings (--set plugin.{name}.KEY=VALUE)",
                  title_justify="left")
        for col in ("key", "default", "meaning"):
            s.add_column(col)
        for key, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            s.add_row(key, repr(default), field.description or "")
        out.print(s)
