"""Offline commands (model import and export, Bento build): they import service/, never the
reverse."""
