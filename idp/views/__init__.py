"""Thin blueprints: parse the HTTP request, call the layer below, render the answer."""
