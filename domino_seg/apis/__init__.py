"""What the tools and users call: train, test, infer, deploy, compare, visualize (the tools/
scripts are thin entry points into these modules); the run machinery they use is ``engine``."""
