"""The lab wing: what only measures or demonstrates the method (the benchmark, the GPU check, the in-process
training harness, pseudo-label scoring against known labels, the demo). ``nnUNetv2_train -tr nnUNetTrainerDCA`` and
``nnUNetv2_predict`` never import it; nothing in planning, preprocessing, network or training may (a test checks)."""
