import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { dump } from 'npyjs';
import { tempDir } from './helpers/temp-dir.js';
import {
  DataError,
  decodeImage,
  batches,
  cropOffset,
  describeTransform,
  loadAll,
  makeTransform,
  openDataset,
  presets,
  registerSource,
  resizeBilinear,
  resizedSize,
  sources,
  transformFromMetadata,
  transformToMetadata,
  type Batch,
  type Dataset,
} from '../src/data/index.js';

const tmpRoot = tempDir('pdquant-data-');

let dirCount = 0;
/** A fresh empty folder under the test's temp dir. */
function freshDir(): string {
  const dir = path.join(tmpRoot, `d${dirCount++}`);
  fs.mkdirSync(dir);
  return dir;
}

type Fill = (x: number, y: number, c: number) => number;

/** Writes a PNG or JPEG (by extension) of width x height RGB pixels given by fill. */
async function writeImage(file: string, width: number, height: number, fill: Fill = () => 128): Promise<void> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) raw[(y * width + x) * 3 + c] = fill(x, y, c);
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(raw, { raw: { width, height, channels: 3 } });
  await (/\.jpe?g$/i.test(file) ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
}

/** Expected float32 value of an 8-bit level after ToTensor and Normalize, computed in float32 steps like torch. */
function normalized(v: number, mean = 0, std = 1): number {
  return Math.fround(Math.fround(Math.fround(v / 255) - Math.fround(mean)) / Math.fround(std));
}

/** Asserts that the promise rejects with a DataError whose message contains every fragment. */
async function rejectsData(promise: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

/** Collects every batch of an iterator. */
async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

/** IDX bytes with the given dims and unsigned-byte payload. */
function idx(dims: number[], payload: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x0800 | dims.length, 0);
  dims.forEach((d, k) => header.writeUInt32BE(d, 4 + 4 * k));
  return Buffer.concat([header, payload]);
}

/** A CIFAR-10 record: label byte then a CHW image whose value is base + channel*10 + pixel index mod 7. */
function cifarRecord(label: number, base: number): Buffer {
  const rec = Buffer.alloc(3073);
  rec[0] = label;
  for (let c = 0; c < 3; c++) for (let k = 0; k < 1024; k++) rec[1 + c * 1024 + k] = base + c * 10 + (k % 7);
  return rec;
}

describe('ImageFolder', () => {
  test('sorts classes and files like torchvision, walking nested folders, ignoring other files', async () => {
    const root = freshDir();
    const files = ['dog/b.png', 'dog/a.JPG', 'cat/z.png', 'cat/sub/y.png', 'cat/10.png', 'cat/2.png', 'ant/x.jpeg'];
    for (const f of files) await writeImage(path.join(root, f), 4, 4);
    fs.writeFileSync(path.join(root, 'cat', 'notes.txt'), 'not an image');
    const ds = await openDataset(root);
    assert.equal(ds.kind, 'imagefolder');
    assert.deepEqual(ds.classes, ['ant', 'cat', 'dog']);
    const order = Array.from({ length: ds.size }, (_, i) => ds.sample(i));
    assert.deepEqual(
      order.map((s) => [path.relative(root, s.path), s.label]),
      [
        ['ant/x.jpeg', 0],
        ['cat/10.png', 1],
        ['cat/2.png', 1],
        ['cat/z.png', 1],
        ['cat/sub/y.png', 1],
        ['dog/a.JPG', 2],
        ['dog/b.png', 2],
      ],
    );
    assert.match(ds.describe(), /7 images, 3 classes \(ant, cat, dog\), 3 channels/);
  });

  test('split picks <root>/<split>, and limit keeps the first samples', async () => {
    const root = freshDir();
    await writeImage(path.join(root, 'train', 'a', '0.png'), 2, 2);
    await writeImage(path.join(root, 'test', 'a', '0.png'), 2, 2);
    await writeImage(path.join(root, 'test', 'b', '0.png'), 2, 2);
    await writeImage(path.join(root, 'test', 'b', '1.png'), 2, 2);
    const ds = await openDataset(root, { split: 'test', limit: 2 });
    assert.equal(ds.root, path.join(root, 'test'));
    assert.equal(ds.size, 2);
    assert.deepEqual([ds.sample(0).label, ds.sample(1).label], [0, 1]);
  });

  test('errors: missing path, no class folders, no images, empty class folder', async () => {
    const root = freshDir();
    await rejectsData(openDataset(path.join(root, 'nope')), 'does not exist', 'nope');
    await writeImage(path.join(root, 'loose.png'), 2, 2);
    await rejectsData(openDataset(root), 'No class sub-folders', root, '1 image directly');
    fs.mkdirSync(path.join(root, 'a'));
    fs.mkdirSync(path.join(root, 'b'));
    await rejectsData(openDataset(root), 'No images in any of the 2 class folders', root);
    await writeImage(path.join(root, 'a', '0.png'), 2, 2);
    await rejectsData(openDataset(root), 'Found no valid file for the classes b');
  });

  test('unlabeled (calibration): a folder holding images directly, in file-name order, labels −1', async () => {
    const root = freshDir();
    for (const f of ['b.png', 'a.jpg', 'notes.txt', 'c.png']) {
      if (f.endsWith('.txt')) fs.writeFileSync(path.join(root, f), 'x');
      else await writeImage(path.join(root, f), 3, 2);
    }
    const ds = await openDataset(root, { unlabeled: true });
    assert.equal(ds.size, 3);
    assert.deepEqual([0, 1, 2].map((i) => path.basename(ds.sample(i).path)), ['a.jpg', 'b.png', 'c.png']);
    assert.deepEqual([0, 1, 2].map((i) => ds.sample(i).label), [-1, -1, -1]);
    assert.deepEqual((await ds.get(2)).shape, [3, 2, 3]);
    assert.equal((await openDataset(root, { unlabeled: true, limit: 2 })).size, 2);
    await rejectsData(openDataset(root), 'No class sub-folders', '3 images directly');
    const empty = freshDir();
    await rejectsData(openDataset(empty, { unlabeled: true }), 'No images in', empty);
  });
});

describe('list file', () => {
  test('keeps the file order and labels by the split folder\'s sorted class folders', async () => {
    const root = freshDir();
    for (const f of ['train/cat/0.png', 'train/dog/0.png', 'train/dog/1.png']) await writeImage(path.join(root, f), 2, 2);
    fs.mkdirSync(path.join(root, 'train', 'ant')); // a class with no listed file still takes label 0
    await writeImage(path.join(root, 'root.png'), 2, 2);
    const list = path.join(root, 'calib.txt');
    fs.writeFileSync(list, 'train/dog/1.png\r\ntrain/cat/0.png\n\n  train/dog/0.png  \nroot.png\n');
    const ds = await openDataset(list);
    assert.equal(ds.kind, 'list');
    assert.deepEqual(ds.classes, ['ant', 'cat', 'dog']);
    assert.deepEqual(
      Array.from({ length: ds.size }, (_, i) => [path.relative(root, ds.sample(i).path), ds.sample(i).label]),
      [
        ['train/dog/1.png', 2],
        ['train/cat/0.png', 1],
        ['train/dog/0.png', 2],
        ['root.png', -1],
      ],
    );
    const batch = await loadAll(ds);
    assert.deepEqual(Array.from(batch.labels), [2, 1, 2, -1]);
  });

  test('"<path> <label>" lines (the Caffe/MXNet val.txt form) label by the integer; a file whose name ends in digits stays a path', async () => {
    const root = freshDir();
    for (const f of ['val/a.png', 'val/b.png', 'train/cat/0.png', 'odd name 7']) await writeImage(path.join(root, f), 2, 2);
    const list = path.join(root, 'val.txt');
    fs.writeFileSync(list, 'val/a.png 65\nval/b.png\t0\ntrain/cat/0.png 3\nodd name 7\ntrain/cat/0.png\n');
    const ds = await openDataset(list);
    assert.deepEqual(
      Array.from({ length: ds.size }, (_, i) => [path.relative(root, ds.sample(i).path), ds.sample(i).label]),
      [['val/a.png', 65], ['val/b.png', 0], ['train/cat/0.png', 3], ['odd name 7', -1], ['train/cat/0.png', 0]],
    );
    fs.writeFileSync(list, 'val/a.png 65\nval/missing.png 3\n');
    await rejectsData(openDataset(list), `${list}:2`, 'missing.png');
  });

  test('names a missing file with its line number', async () => {
    const root = freshDir();
    await writeImage(path.join(root, 'train', 'a', '0.png'), 2, 2);
    const list = path.join(root, 'l.txt');
    fs.writeFileSync(list, 'train/a/0.png\n\ntrain/a/missing.png\n');
    await rejectsData(openDataset(list), `${list}:3`, 'missing.png');
  });
});

describe('CIFAR-10 binary', () => {
  test('parses records of a .bin file into CHW images and labels', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'test_batch.bin');
    fs.writeFileSync(file, Buffer.concat([cifarRecord(3, 0), cifarRecord(9, 100)]));
    const ds = await openDataset(file);
    assert.equal(ds.kind, 'cifar-bin');
    assert.equal(ds.size, 2);
    assert.equal(ds.classes[3], 'cat');
    const item = await ds.get(1);
    assert.deepEqual(item.shape, [3, 32, 32]);
    assert.equal(item.label, 9);
    assert.equal(item.path, `${file}#1`);
    for (const [c, k] of [[0, 0], [1, 5], [2, 1023]] as const) {
      assert.equal(item.data[c * 1024 + k], normalized(100 + c * 10 + (k % 7)));
    }
  });

  test('a folder reads data_batch_* in numeric order, or test_batch.bin for split test', async () => {
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, 'data_batch_10.bin'), cifarRecord(2, 0));
    fs.writeFileSync(path.join(dir, 'data_batch_2.bin'), cifarRecord(1, 0));
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), cifarRecord(7, 0));
    fs.writeFileSync(path.join(dir, 'batches.meta.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n');
    const train = await openDataset(dir);
    assert.deepEqual([train.sample(0).label, train.sample(1).label], [1, 2]);
    assert.equal(train.classes[0], 'a');
    const testSplit = await openDataset(dir, { split: 'test' });
    assert.equal(testSplit.size, 1);
    assert.equal(testSplit.sample(0).label, 7);
  });

  test('rejects a truncated file, naming it', async () => {
    const file = path.join(freshDir(), 'data_batch_1.bin');
    fs.writeFileSync(file, cifarRecord(0, 0).subarray(0, 3000));
    await rejectsData(openDataset(file), file, 'truncated');
  });
});

describe('IDX', () => {
  const images = Uint8Array.from({ length: 3 * 2 * 3 }, (_, i) => i * 10);
  const labels = Uint8Array.from([4, 0, 9]);

  test('reads gzipped and plain files from a folder by split', async () => {
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idx([3, 2, 3], images)));
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idx([3], labels)));
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), idx([1, 2, 3], images.subarray(6, 12)));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx([1], Uint8Array.from([5])));
    const train = await openDataset(dir);
    assert.equal(train.kind, 'idx');
    assert.equal(train.size, 3);
    assert.equal(train.channels, 1);
    assert.equal(train.classes.length, 10);
    const item = await train.get(2);
    assert.deepEqual(item.shape, [1, 2, 3]);
    assert.equal(item.label, 9);
    assert.deepEqual(Array.from(item.data), Array.from(images.subarray(12, 18), (v) => normalized(v)));
    const testSplit = await openDataset(dir, { split: 'test' });
    assert.equal(testSplit.size, 1);
    assert.equal(testSplit.sample(0).label, 5);
    assert.deepEqual(Array.from((await testSplit.get(0)).data), Array.from(images.subarray(6, 12), (v) => normalized(v)));
  });

  test('an images file alone has unknown labels; channels 3 replicates gray', async () => {
    const file = path.join(freshDir(), 'x-images-idx3-ubyte');
    fs.writeFileSync(file, idx([3, 2, 3], images));
    const ds = await openDataset(file, { channels: 3 });
    assert.equal(ds.sample(0).label, -1);
    assert.deepEqual(ds.classes, []);
    const item = await ds.get(1);
    assert.deepEqual(item.shape, [3, 2, 3]);
    assert.deepEqual(Array.from(item.data.subarray(12, 18)), Array.from(images.subarray(6, 12), (v) => normalized(v)));
  });

  test('errors: bad magic, truncated, label count mismatch', async () => {
    const dir = freshDir();
    const bad = path.join(dir, 'bad-images-idx3-ubyte');
    fs.writeFileSync(bad, Buffer.concat([Buffer.from([0, 0, 0x0d, 3]), idx([3, 2, 3], images).subarray(4)]));
    await rejectsData(openDataset(bad), bad, 'magic 0x00000803', 'found 0x00000d03');
    const short = path.join(dir, 'short-images-idx3-ubyte.gz');
    fs.writeFileSync(short, gzipSync(idx([3, 2, 3], images.subarray(0, 10))));
    await rejectsData(openDataset(short), short, 'truncated');
    const cut = path.join(dir, 'cut-images-idx3-ubyte.gz');
    const zipped = gzipSync(idx([3, 2, 3], images));
    fs.writeFileSync(cut, zipped.subarray(0, zipped.length - 6));
    await rejectsData(openDataset(cut), cut, 'Cannot decompress', 'truncated');
    const mismatch = path.join(dir, 'm-images-idx3-ubyte');
    fs.writeFileSync(mismatch, idx([3, 2, 3], images));
    fs.writeFileSync(path.join(dir, 'm-labels-idx1-ubyte'), idx([2], labels.subarray(0, 2)));
    await rejectsData(openDataset(mismatch), 'm-labels-idx1-ubyte', 'has 2 labels', '3 images');
  });
});

describe('transforms', () => {
  test('scale and normalize are exact float32 per channel', async () => {
    const root = freshDir();
    const fill: Fill = (x, y, c) => (x * 50 + y * 7 + c * 80) % 256;
    await writeImage(path.join(root, 'a', 'img.png'), 5, 3, fill);
    const ds = await openDataset(root);
    const t = presets.cifar;
    const item = await ds.get(0, t);
    assert.deepEqual(item.shape, [3, 3, 5]);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 5; x++) assert.equal(item.data[(c * 3 + y) * 5 + x], normalized(fill(x, y, c), t.mean![c], t.std![c]));
      }
    }
    const plain = await ds.get(0, presets.none);
    assert.equal(plain.data[0], normalized(fill(0, 0, 0)));
  });

  test('center crop offsets round half to even like Python, and pad when the crop is larger', () => {
    assert.equal(cropOffset(5, 2), 2); // round(1.5) = 2
    assert.equal(cropOffset(6, 1), 2); // round(2.5) = 2
    assert.equal(cropOffset(3, 2), 0); // round(0.5) = 0
    assert.equal(cropOffset(256, 224), 16);
    assert.equal(cropOffset(2, 5), -1); // pad (5 - 2) // 2 = 1 before
  });

  test('center crop takes the torchvision window and pads with zeros', async () => {
    const root = freshDir();
    const fill: Fill = (x, y) => y * 10 + x;
    await writeImage(path.join(root, 'a', 'img.png'), 7, 4, fill);
    const ds = await openDataset(root);
    const crop = await ds.get(0, { crop: 3 });
    const top = cropOffset(4, 3);
    const left = cropOffset(7, 3);
    assert.deepEqual([top, left], [0, 2]);
    const channel0 = Array.from(crop.data.subarray(0, 9));
    assert.deepEqual(channel0, [0, 1, 2, 3, 4, 5, 6, 7, 8].map((k) => normalized(fill(left + (k % 3), top + Math.floor(k / 3), 0))));
    const padded = await ds.get(0, { crop: 6 });
    assert.deepEqual(padded.shape, [3, 6, 6]);
    assert.equal(padded.data[0], 0); // row 0 is padding: (6 - 4) // 2 = 1 row above
    assert.equal(padded.data[6], normalized(fill(0, 0, 0)));
  });

  test('resize sets the shorter side and truncates the longer one', async () => {
    assert.deepEqual(resizedSize(40, 30, 20), [26, 20]);
    assert.deepEqual(resizedSize(30, 45, 20), [20, 30]);
    const root = freshDir();
    await writeImage(path.join(root, 'a', 'wide.png'), 40, 30, (x) => x * 6);
    const ds = await openDataset(root);
    assert.deepEqual((await ds.get(0, { resize: 20 })).shape, [3, 20, 26]);
    assert.deepEqual((await ds.get(0, presets.imagenet)).shape, [3, 224, 224]);
  });

  test('resize and crop to [height, width]: exact size, and a centered window padded where the image is smaller', async () => {
    const root = freshDir();
    const fill: Fill = (x, y) => y * 10 + x;
    await writeImage(path.join(root, 'a', 'img.png'), 7, 4, fill);
    const ds = await openDataset(root);
    const window = await ds.get(0, { crop: [2, 5] });
    assert.deepEqual(window.shape, [3, 2, 5]);
    const [top, left] = [cropOffset(4, 2), cropOffset(7, 5)];
    assert.deepEqual([top, left], [1, 1]);
    assert.deepEqual(Array.from(window.data.subarray(0, 10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => normalized(fill(left + (k % 5), top + Math.floor(k / 5), 0))));
    // Taller than the image: a row of padding above (6 - 4) // 2, the width cropped as before.
    const tall = await ds.get(0, { crop: [6, 5] });
    assert.deepEqual(tall.shape, [3, 6, 5]);
    assert.deepEqual([tall.data[0], tall.data[5]], [0, normalized(fill(1, 0, 0))]);
    // [height, width] resizes to exactly that, without keeping the aspect ratio; then crops as asked.
    assert.deepEqual((await ds.get(0, { resize: [9, 3] })).shape, [3, 9, 3]);
    assert.deepEqual((await ds.get(0, { resize: [9, 3], crop: [8, 2] })).shape, [3, 8, 2]);
    const square = await ds.get(0, { resize: [4, 7] });
    assert.deepEqual(Array.from(square.data), Array.from((await ds.get(0, {})).data), 'resizing to its own size changes nothing');
  });

  test('bilinear resize is antialiased, center-aligned and keeps constants', () => {
    const row = { data: Uint8Array.from([0, 100, 200, 0]), width: 4, height: 1, channels: 1 };
    assert.deepEqual(Array.from(resizeBilinear(row, 8, 1).data), [0, 25, 75, 125, 175, 150, 50, 0]); // values from Pillow 9.4
    assert.deepEqual(Array.from(resizeBilinear(row, 2, 1).data), [71, 100]); // values from Pillow 9.4
    const flat = { data: new Uint8Array(30 * 20 * 3).fill(77), width: 30, height: 20, channels: 3 };
    assert.ok(resizeBilinear(flat, 13, 9).data.every((v) => v === 77));
  });

  test('presets and overrides', () => {
    assert.deepEqual(presets.imagenet, { resize: 256, crop: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    assert.deepEqual(presets.mnist, {});
    assert.deepEqual(makeTransform('mnist', { mean: [0.1307], std: [0.3081], crop: undefined }), { mean: [0.1307], std: [0.3081] });
    assert.deepEqual(makeTransform('imagenet', { crop: 192 }).crop, 192);
    assert.throws(() => makeTransform('cifar100'), DataError);
    assert.throws(() => makeTransform('cifar100'), /Unknown transform preset "cifar100"; known presets: cifar, imagenet/);
    assert.throws(() => makeTransform('none', { std: [0] }), DataError);
  });

  test('a transform written to model metadata reads back the same; "none" is recorded as mean 0, std 1', () => {
    for (const t of [presets.imagenet!, presets.cifar!, { resize: 28, mean: [0.286], std: [0.353] }]) assert.deepEqual(transformFromMetadata(transformToMetadata(t)), t);
    assert.deepEqual(transformToMetadata({}), { preprocess_mean: '0', preprocess_std: '1' });
    assert.deepEqual(transformFromMetadata(transformToMetadata({})), { mean: [0], std: [1] });
    assert.equal(transformFromMetadata({ preprocess_mean: '0.5' }), undefined, 'mean without std records nothing');
    assert.equal(transformFromMetadata({ producer: 'x' }), undefined);
    assert.throws(() => transformFromMetadata({ preprocess_mean: '0.5,a', preprocess_std: '1' }), /metadata preprocess_mean = "0.5,a" is not a comma-separated list of numbers/);
    assert.throws(() => transformFromMetadata({ preprocess_mean: '0', preprocess_std: '1', preprocess_crop: '2.5' }), /preprocess_crop = "2.5" is not a positive integer/);
    const oblong = { resize: [288, 384] as const, crop: [256, 320] as const, mean: [0.5], std: [0.25] };
    assert.deepEqual(transformToMetadata(oblong), { preprocess_resize: '288x384', preprocess_crop: '256x320', preprocess_mean: '0.5', preprocess_std: '0.25' });
    assert.deepEqual(transformFromMetadata(transformToMetadata(oblong)), { ...oblong, resize: [288, 384], crop: [256, 320] });
    assert.throws(() => transformFromMetadata({ preprocess_mean: '0', preprocess_std: '1', preprocess_crop: '256x0' }), /preprocess_crop = "256x0" is not a positive integer or HxW/);
    assert.throws(() => makeTransform('none', { crop: [2, 3, 4] as unknown as [number, number] }), /Transform crop must be a positive integer or \[height, width\] of positive integers, got 2x3x4/);
    assert.equal(describeTransform({ resize: [288, 384], crop: 256 }), 'resize 288x384, crop 256, scale to [0, 1]');
    assert.throws(() => transformFromMetadata({ preprocess_mean: '0', preprocess_std: '0' }), /std must be finite non-zero/);
  });

  test('channels 1 converts RGB with PIL\'s luma weights', async () => {
    const root = freshDir();
    await writeImage(path.join(root, 'a', 'img.png'), 1, 1, (_x, _y, c) => [200, 100, 50][c]!);
    const ds = await openDataset(root, { channels: 1 });
    const item = await ds.get(0);
    assert.deepEqual(item.shape, [1, 1, 1]);
    assert.equal(item.data[0], normalized((200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16));
  });

  test('mean/std of the wrong length is an error', async () => {
    const root = freshDir();
    await writeImage(path.join(root, 'a', 'img.png'), 2, 2);
    const ds = await openDataset(root, { channels: 1 });
    await rejectsData(ds.get(0, presets.cifar), 'mean has 3 values', '1 channel');
  });
});

describe('batches', () => {
  /** Five 4x3 images in classes a (3) and b (2), each filled with its index * 10. */
  async function fiveImages(): Promise<Dataset> {
    const root = freshDir();
    for (let i = 0; i < 5; i++) await writeImage(path.join(root, i < 3 ? 'a' : 'b', `${i}.png`), 4, 3, () => i * 10);
    return openDataset(root);
  }

  test('yields every sample in order, the last batch partial', async () => {
    const ds = await fiveImages();
    for (const prefetch of [0, 1, 2, 5]) {
      const got = await collect(batches(ds, { batchSize: 2, prefetch }));
      assert.deepEqual(got.map((b) => b.shape), [[2, 3, 3, 4], [2, 3, 3, 4], [1, 3, 3, 4]]);
      assert.deepEqual(got.flatMap((b) => Array.from(b.labels)), [0, 0, 0, 1, 1]);
      assert.deepEqual(got.flatMap((b) => b.paths.map((p) => path.basename(p))), ['0.png', '1.png', '2.png', '3.png', '4.png']);
      const firstValues = got.flatMap((b) => Array.from({ length: b.shape[0] }, (_, n) => b.data[n * 36]));
      assert.deepEqual(firstValues, [0, 10, 20, 30, 40].map((v) => normalized(v)));
    }
  });

  test('visits the given indices in their order and applies the transform', async () => {
    const ds = await fiveImages();
    const got = await collect(batches(ds, { batchSize: 4, indices: [4, 0, 2], transform: { crop: 2 } }));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]!.shape, [3, 3, 2, 2]);
    assert.deepEqual(Array.from(got[0]!.labels), [1, 0, 0]);
    assert.deepEqual(got[0]!.paths.map((p) => path.basename(p)), ['4.png', '0.png', '2.png']);
  });

  test('loadAll gives one batch of everything', async () => {
    const ds = await fiveImages();
    const all = await loadAll(ds, presets.cifar);
    assert.deepEqual(all.shape, [5, 3, 3, 4]);
    assert.equal(all.data.length, 5 * 3 * 3 * 4);
    assert.equal(all.data[4 * 36], normalized(40, 0.485, 0.229));
  });

  test('a corrupt JPEG fails with its path, even when prefetched and abandoned', async () => {
    const root = freshDir();
    for (let i = 0; i < 4; i++) await writeImage(path.join(root, 'a', `${i}.jpg`), 8, 8);
    const corrupt = path.join(root, 'a', '3.jpg');
    const bytes = fs.readFileSync(corrupt);
    fs.writeFileSync(corrupt, bytes.subarray(0, bytes.length / 2));
    const ds = await openDataset(root);
    await rejectsData(collect(batches(ds, { batchSize: 2 })), `Cannot decode image ${corrupt}`);
    // libvips's multi-line, repeated warnings become one line, each said once
    await assert.rejects(decodeImage(corrupt), (e: unknown) => {
      const message = (e as Error).message;
      assert.ok(!message.includes('\n'), message);
      const parts = message.split('; ');
      parts.forEach((p, i) => assert.ok(parts.every((q, j) => i === j || !q.includes(p)), message));
      return true;
    });
    for await (const b of batches(ds, { batchSize: 1, prefetch: 3 })) {
      assert.equal(b.shape[0], 1);
      break; // the failing batch was already launched; leaving must not raise an unhandled rejection
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  });

  test('images of different sizes in one batch name both files and sizes', async () => {
    const root = freshDir();
    await writeImage(path.join(root, 'a', '0.png'), 4, 4);
    await writeImage(path.join(root, 'a', '1.png'), 5, 3);
    const ds = await openDataset(root);
    await rejectsData(loadAll(ds), '1.png is 3x3x5', '0.png in the same batch is 3x4x4', 'resize/crop');
    assert.equal((await loadAll(ds, { resize: 4, crop: 4 })).shape[0], 2);
  });

  test('rejects a bad batch size', async () => {
    const ds = await fiveImages();
    await rejectsData(collect(batches(ds, { batchSize: 0 })), 'batchSize');
  });
});

describe('NumPy .npy', () => {
  const write = (file: string, data: Parameters<typeof dump>[0], shape: number[]) => fs.writeFileSync(file, Buffer.from(dump(data, shape)));
  const tensors = Float32Array.from({ length: 3 * 2 * 2 * 2 }, (_, i) => i / 7 - 1);

  test('float [N, C, H, W] are model-ready: used as they are, whatever the transform; labels from X_labels.npy', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'val_images.npy');
    write(file, tensors, [3, 2, 2, 2]);
    write(path.join(dir, 'val_labels.npy'), BigInt64Array.from([2n, 0n, 1n]), [3]);
    const ds = await openDataset(file);
    assert.equal(ds.kind, 'npy');
    assert.equal(ds.preprocessed, true);
    assert.equal(ds.size, 3);
    assert.deepEqual(ds.classes, ['0', '1', '2']);
    const batch = await loadAll(ds, { mean: [0.5], std: [0.25], resize: 9 });
    assert.deepEqual(batch.shape, [3, 2, 2, 2]);
    assert.deepEqual(Array.from(batch.data), Array.from(tensors));
    assert.deepEqual(Array.from(batch.labels), [2, 0, 1]);
    assert.match(ds.describe(), /3 model-ready tensors 2×2×2, 3 classes/);
    const alone = path.join(freshDir(), 'calib.npy');
    write(alone, Float64Array.from(tensors), [3, 2, 2, 2]);
    const unlabelled = await openDataset(alone, { limit: 2 });
    assert.equal(unlabelled.size, 2);
    assert.equal(unlabelled.sample(1).label, -1);
    assert.deepEqual(Array.from((await unlabelled.get(1)).data), Array.from(tensors.subarray(8, 16)));
  });

  test('uint8 [N, H, W(, C)] are images that the transform applies to; labels from X.labels.npy', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'digits.npy');
    const pixels = Uint8Array.from({ length: 2 * 2 * 3 * 3 }, (_, i) => i * 7);
    write(file, pixels, [2, 2, 3, 3]);
    write(path.join(dir, 'digits.labels.npy'), Uint8Array.from([1, 0]), [2]);
    const ds = await openDataset(file);
    assert.equal(ds.preprocessed, undefined);
    assert.equal(ds.channels, 3);
    const item = await ds.get(1, { mean: [0.5], std: [0.25] });
    assert.deepEqual(item.shape, [3, 2, 3]);
    assert.equal(item.label, 0);
    assert.equal(item.data[0], normalized(pixels[18]!, 0.5, 0.25)); // channel 0 of the first pixel of image 1 (HWC)
    const gray = path.join(freshDir(), 'gray.npy');
    write(gray, pixels, [2, 3, 6]);
    assert.deepEqual((await (await openDataset(gray)).get(0)).shape, [1, 3, 6]);
  });

  test('errors: not .npy, other dtypes and shapes, labels that do not fit', async () => {
    const dir = freshDir();
    const junk = path.join(dir, 'junk.npy');
    fs.writeFileSync(junk, 'not numpy at all');
    await rejectsData(openDataset(junk), junk, 'is not a NumPy .npy file');
    const flat = path.join(dir, 'flat.npy');
    write(flat, tensors, [3, 8]);
    await rejectsData(openDataset(flat), flat, 'holds floats of shape (3, 8); model-ready inputs are [N, C, H, W]');
    const ints = path.join(dir, 'ints.npy');
    write(ints, Int32Array.from([1, 2, 3, 4]), [1, 1, 2, 2]);
    await rejectsData(openDataset(ints), ints, 'holds i4');
    const wide = path.join(dir, 'wide.npy');
    write(wide, Uint8Array.from({ length: 16 }), [1, 2, 2, 4]);
    await rejectsData(openDataset(wide), wide, 'images are [N, H, W] or [N, H, W, C] with C 1 or 3');
    const x = path.join(dir, 'x_images.npy');
    write(x, tensors, [3, 2, 2, 2]);
    write(path.join(dir, 'x_labels.npy'), Int32Array.from([0, 1]), [2]);
    await rejectsData(openDataset(x), 'x_labels.npy has 2 labels but its inputs have 3 samples');
    write(path.join(dir, 'x_labels.npy'), Float32Array.from([0, 1, 1]), [3]);
    await rejectsData(openDataset(x), 'x_labels.npy must hold one integer label per sample');
    write(path.join(dir, 'x_labels.npy'), Int8Array.from([0, -1, 1]), [3]);
    await rejectsData(openDataset(x), 'x_labels.npy: label 1 is -1');
    const cut = path.join(dir, 'cut.npy');
    fs.writeFileSync(cut, Buffer.from(dump(tensors, [3, 2, 2, 2])).subarray(0, 150));
    await rejectsData(openDataset(cut), cut, 'is a truncated or damaged .npy file');
  });
});

describe('openDataset', () => {
  test('detects each kind, honours a forced kind, and refuses what it cannot tell', async () => {
    assert.deepEqual(sources().map((s) => s.kind), ['cifar-bin', 'idx', 'npy', 'list', 'imagefolder']);
    const dir = freshDir();
    const other = path.join(dir, 'data.csv');
    fs.writeFileSync(other, '1,2\n');
    await rejectsData(openDataset(other), other, 'imagefolder:');
    await rejectsData(openDataset(other, { kind: 'parquet' }), 'Unknown dataset kind "parquet"', 'cifar-bin');
    await rejectsData(openDataset(dir, { limit: 0 }), 'limit');
  });

  test('refuses to register a kind twice', () => {
    assert.throws(() => registerSource(sources()[0]!), /already registered/);
  });
});
