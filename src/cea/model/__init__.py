"""Backbone resolution (local folder, packaged MiniLM, tiny random BERT) and model building."""
