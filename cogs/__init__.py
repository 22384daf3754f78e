"""discord.py extensions: slash commands, views and gateway listeners (thin; logic is in bot/)."""
