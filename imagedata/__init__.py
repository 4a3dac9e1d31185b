"""Image data for batchlab: folders of photos, Microsoft's cats-vs-dogs archive, or a synthetic set.

    from imagedata import load_dataset, Dataset, DataError
    ds = load_dataset("path/to/PetImages", image_size=128)
    x, y = ds.batch("train", indices)     # float32 images in [0, 1]
    x, y = ds.pixels("train", indices)    # the same as uint8 pixels (what training hands the model)
"""
from imagedata.dataset import Dataset
from imagedata.errors import DataError
from imagedata.loader import default_cache_dir, load_dataset

__all__ = ["Dataset", "DataError", "default_cache_dir", "load_dataset"]
