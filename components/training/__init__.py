"""Transform's preprocessing (in-graph tokenization, vocabularies) and the Trainer's module code and input pipeline."""
