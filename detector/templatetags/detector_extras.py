from django import template

register = template.Library()


@register.filter
def percent(value, digits=1):
    """0.0034 -> '0.3 %'; None -> '—'."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f} %"
