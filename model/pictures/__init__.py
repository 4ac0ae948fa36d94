"""The pictures' views: decoding uploads (pictures, animations, HEIC, videos) into the views a
viewer sees, Yahoo's preprocessing of each, their PDQ hashes, and thumbnails for review."""
