"""The canonical op set. Importing this package registers every op family.

Where is op X? ``get_schema("X").family`` names its module; each module holds, per op, the schema,
shape/dtype inference and numpy reference kernel.
"""
from convertkit.canonical_ir.ops.registry import (  # noqa: F401
    REQUIRED,
    InferContext,
    OpSchema,
    all_schemas,
    get_schema,
    has_op,
    register,
)
from convertkit.canonical_ir.ops import (  # noqa: F401,E402  (imported for registration)
    elementwise,
    activations,
    nn,
    resize,
    norm,
    linalg,
    attention,
    shape_ops,
    indexing,
    reduce,
    misc,
    quant,
)
