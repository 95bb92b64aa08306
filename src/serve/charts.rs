//! Server-rendered SVG charts for the reports page.
