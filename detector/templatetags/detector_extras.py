from django import template

register = template.Library()


@register.filter
def percent(value, digits=1):
    """0.0034 -> '0.3 %'; None -> '—'."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def thousands(value):
    """12345 -> "12,345" (a count in running text); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) else value
