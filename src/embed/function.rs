//! A sentence-embedding model as a SQL scalar function: `minilm(text)` → `FLOAT[d]`.
//!
//! The function is immutable, so DataFusion's simplifier folds a constant argument at
//! planning time: `ORDER BY cosine_distance(embedding, minilm('query')) LIMIT k` reaches the
//! ANN rewrite with a constant query vector, embedded once. A NULL text gives a NULL vector.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::embed::{ModelDirectory, SentenceEmbedder};
use crate::kmeans::{Accelerator, AcceleratorRequest};

/// The SQL function `name(text)` computing `embedder`'s embeddings.
#[derive(Debug)]
pub struct EmbeddingFunction {
    name: String,
    embedder: Arc<SentenceEmbedder>,
    signature: Signature,
}

impl EmbeddingFunction {
    pub fn new(name: impl Into<String>, embedder: Arc<SentenceEmbedder>) -> Self {
        Self {
            name: name.into(),
            embedder,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Loads the sentence-transformers model in directory `path` onto the device `accelerator`
    /// asks for, as the function `name`.
    pub fn load(
        name: impl Into<String>,
        path: impl AsRef<std::path::Path>,
        accelerator: AcceleratorRequest,
    ) -> Result<Self> {
        let directory = ModelDirectory::open(path)?;
        let embedder = SentenceEmbedder::load(directory, Accelerator::select(accelerator)?)?;
        Ok(Self::new(name, Arc::new(embedder)))
    }

    pub fn embedder(&self) -> &Arc<SentenceEmbedder> {
        &self.embedder
    }

    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::from(self)
    }

    /// The element field and dimension of the `FLOAT[d]` this function returns.
    fn vector_shape(&self) -> Result<(FieldRef, i32)> {
        let Ok(dim) = i32::try_from(self.embedder.dim()) else {
            return plan_err!(
                "{}: dimension {} is too large",
                self.name,
                self.embedder.dim()
            );
        };
        Ok((
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            dim,
        ))
    }

    fn embed_array(&self, texts: &ArrayRef) -> Result<ArrayRef> {
        let texts = Self::texts(texts)?;
        let values = self.embedder.embed(&Self::present(&texts))?;
        self.vector_array(&texts, values)
    }

    /// The argument as UTF-8 text.
    pub(crate) fn texts(arg: &ArrayRef) -> Result<ArrayRef> {
        Ok(datafusion::arrow::compute::cast(arg, &DataType::Utf8)?)
    }

    /// The non-NULL texts of `texts` (from [`Self::texts`]): what the model embeds.
    pub(crate) fn present(texts: &ArrayRef) -> Vec<&str> {
        texts.as_string::<i32>().iter().flatten().collect()
    }

    /// The function's result for `texts` from the embeddings of its [`Self::present`] texts.
    pub(crate) fn vector_array(&self, texts: &ArrayRef, values: Vec<f32>) -> Result<ArrayRef> {
        let dim = self.embedder.dim();
        // Rows of NULL texts get zeros under a NULL bit, as Arrow lays out null list slots.
        let Some(total) = texts.len().checked_mul(dim) else {
            return exec_err!(
                "{}: {} texts are too many for one batch",
                self.name,
                texts.len()
            );
        };
        let mut all = vec![0f32; total];
        let mut next = 0;
        for i in 0..texts.len() {
            if texts.is_valid(i) {
                all[i * dim..(i + 1) * dim].copy_from_slice(&values[next * dim..(next + 1) * dim]);
                next += 1;
            }
        }
        let (field, d) = self.vector_shape()?;
        Ok(Arc::new(FixedSizeListArray::try_new(
            field,
            d,
            Arc::new(Float32Array::from(all)),
            texts.nulls().cloned(),
        )?))
    }
}

impl PartialEq for EmbeddingFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.embedder, &other.embedder)
    }
}

impl Eq for EmbeddingFunction {}

impl Hash for EmbeddingFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        Arc::as_ptr(&self.embedder).hash(state);
    }
}

impl ScalarUDFImpl for EmbeddingFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        let (field, d) = self.vector_shape()?;
        Ok(DataType::FixedSizeList(field, d))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null] => {
                Ok(vec![DataType::Utf8])
            }
            [t] => plan_err!(
                "{} embeds text; got a {t} argument (cast it: {}(CAST(x AS VARCHAR)))",
                self.name,
                self.name
            ),
            _ => plan_err!(
                "{} takes one text argument, e.g. {}('a sentence'); got {} arguments",
                self.name,
                self.name,
                arg_types.len()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [ColumnarValue::Array(texts)] => Ok(ColumnarValue::Array(self.embed_array(texts)?)),
            [ColumnarValue::Scalar(text)] => {
                let one = self.embed_array(&text.to_array_of_size(1)?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&one, 0)?))
            }
            _ => exec_err!("{} takes one text argument", self.name),
        }
    }
}
