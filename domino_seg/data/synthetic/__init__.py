"""Built-in synthetic street-scene weather benchmark: procedural scenes in perspective
(labels + depth), physically motivated fog/night/rain/snow, written in the real Cityscapes and
ACDC layouts so that the pipeline runs offline. Pure numpy/OpenCV: no mmseg import."""
from .geometry import CLASSES, SKY_DEPTH, Sun
from .scene import Scene, render_scene
from .weather import CONDITIONS, fog, render_weather
from .writer import (
                     RENDERABLE,
                     TRAIN_ID_TO_ID,
                     acdc_stem,
                     benchmark_is_complete,
                     cityscapes_stem,
                     depth_to_disparity_png,
                     disparity_png_to_depth,
                     generated_folder,
                     read_cityscapes_depth,
                     render_generated,
                     render_sample,
                     write_benchmark,
)

__all__ = ['CLASSES', 'CONDITIONS', 'RENDERABLE', 'SKY_DEPTH', 'Scene', 'Sun', 'TRAIN_ID_TO_ID',
           'acdc_stem', 'benchmark_is_complete', 'cityscapes_stem', 'depth_to_disparity_png',
           'disparity_png_to_depth', 'fog', 'generated_folder', 'read_cityscapes_depth',
           'render_generated', 'render_sample',
           'render_scene', 'render_weather', 'write_benchmark']
