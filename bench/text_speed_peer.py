"""scikit-learn peer of bench/text-speed.ts: hashed TF-IDF (8192 buckets, sublinear TF, smoothed IDF, L2) and a
logistic regression on the same texts. Reads a JSON file {train, train_labels, test, test_labels}; prints one JSON
line: IDF fit and embedding throughput (texts/s), head training time, test accuracy."""
import json
import sys
import time

from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression

d = json.load(open(sys.argv[1]))
hv = HashingVectorizer(n_features=8192, alternate_sign=False, norm=None)
t0 = time.perf_counter()
tf = TfidfTransformer(sublinear_tf=True, smooth_idf=True).fit(hv.transform(d["train"]))
t_idf = time.perf_counter() - t0
t0 = time.perf_counter()
xtr = tf.transform(hv.transform(d["train"]))
t_embed = time.perf_counter() - t0
xte = tf.transform(hv.transform(d["test"]))
t0 = time.perf_counter()
clf = LogisticRegression(max_iter=1000).fit(xtr, d["train_labels"])
t_head = time.perf_counter() - t0
acc = float((clf.predict(xte) == d["test_labels"]).mean())
print(json.dumps({"idf_fit_s": t_idf, "embed_texts_per_s": len(d["train"]) / t_embed, "head_train_s": t_head, "test_acc": acc}))
