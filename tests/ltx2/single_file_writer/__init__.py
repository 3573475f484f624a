"""The LTX-2 single-file writer the tests build their single files with (write.py: `save_single_file`), and the
writing halves of the key names (keys.py) and the `config` header (config.py) whose reading halves are the
product's (extensions_built_in/diffusion_models/ltx2/single_file/)."""
