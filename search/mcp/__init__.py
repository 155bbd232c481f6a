"""The MCP server over search, sessions, context and usage: tools (what they do), server (the SDK's
MCPServer with their schemas), http (/mcp behind the WSGI app), and `manage.py mcp` for stdio."""
