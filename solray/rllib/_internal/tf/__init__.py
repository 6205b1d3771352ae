"""framework("tf2"): TensorFlow modules and learners, imported only when a config asks for tf2
(``import solray.rllib`` never imports TensorFlow)."""
