"""The consoles: ISP signup, ISP console, tenant console, self-care and the platform page."""
