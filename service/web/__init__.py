"""Pages for agents, departments and supervisors (Simplified Chinese, bundled assets)."""
