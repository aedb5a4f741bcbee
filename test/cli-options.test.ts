// Which preprocessing a command uses: --preset, else what the model's metadata records, else the input size; single flags replace fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { bitWidth, bitRule, imageSize, numberList } from '../src/cli/options.js';
import { presets, transformFor, transformToMetadata } from '../src/data/index.js';

const recorded = transformToMetadata({ resize: 36, crop: 32, mean: [0.5], std: [0.25] });

test('--preset wins over the metadata, the metadata over the input size, and the size picks cifar or imagenet', () => {
  assert.deepEqual(transformFor({ preset: 'mnist' }, [32, 32], recorded), {});
  assert.deepEqual(transformFor({}, [32, 32], recorded), { resize: 36, crop: 32, mean: [0.5], std: [0.25] });
  assert.deepEqual(transformFor({}, [32, 32]), presets.cifar);
  assert.deepEqual(transformFor({}, [224, 224]), presets.imagenet);
  assert.deepEqual(transformFor({}, [28, 28]), {});
  assert.throws(() => transformFor({ preset: 'cifar100' }, [32, 32]), /Unknown preset cifar100; choose one of cifar, imagenet, mnist, none/);
});

test('--resize, --crop, --mean and --std replace one field each of whatever was chosen', () => {
  assert.deepEqual(transformFor({ preset: 'imagenet', resize: 320, crop: 288 }, [224, 224]), { ...presets.imagenet, resize: 320, crop: 288 });
  assert.deepEqual(transformFor({ resize: 28 }, [28, 28], recorded), { resize: 28, crop: 32, mean: [0.5], std: [0.25] });
  assert.deepEqual(transformFor({ mean: [0.1], std: [0.2] }, [28, 28]), { mean: [0.1], std: [0.2] });
  assert.throws(() => transformFor({ std: [0] }, [28, 28]), /std must be finite non-zero numbers/);
});

test('--resize and --crop take one size or height x width', () => {
  assert.equal(imageSize('--crop')('224'), 224);
  assert.deepEqual(imageSize('--crop')('256x192'), [256, 192]);
  assert.deepEqual(imageSize('--resize')(' 256 × 320 '), [256, 320]);
  assert.deepEqual(transformFor({ preset: 'imagenet', crop: [256, 192] }, [256, 192]), { ...presets.imagenet, crop: [256, 192] });
  for (const bad of ['', '0', '-3', '2.5', '256x', 'x192', '256x0', '1x2x3', 'a'])
    assert.throws(() => imageSize('--crop')(bad), (e: unknown) => e instanceof InvalidArgumentError && e.message === `Expected a positive integer or HxW (height x width, e.g. 256x192) for --crop but received ${bad}`, bad);
});

test('--mean and --std take comma-separated numbers', () => {
  assert.deepEqual(numberList('--mean')('0.485, 0.456,0.406'), [0.485, 0.456, 0.406]);
  for (const bad of ['', 'a', '0.5,,0.5', '1,2,'])
    assert.throws(() => numberList('--mean')(bad), (e: unknown) => e instanceof InvalidArgumentError && /Expected comma-separated numbers for --mean/.test(e.message));
});

test('--w and --a take 2..8, or 32 for float weights or activations', () => {
  for (const [flag, values] of [['--w', 'weights'], ['--a', 'activations']] as const) {
    const parse = bitWidth(flag, values);
    assert.deepEqual(['2', '8', '32'].map(parse), [2, 8, 32]);
    for (const bad of ['1', '9', '16', '33', '32.0', '4.5', 'fp', ''])
      assert.throws(() => parse(bad), (e: unknown) => e instanceof InvalidArgumentError && e.message === `Expected integer 2..8, or 32 to leave ${values} in float, for ${flag} but received ${bad}`, bad);
  }
});

test('--bits takes <pattern>=<w>/<a> rules, repeated into a list in order', () => {
  assert.deepEqual(bitRule('re:depthwise|/fc/=8/6', bitRule('/layer4/=8/8')), [{ match: '/layer4/', wBits: 8, aBits: 8 }, { match: 're:depthwise|/fc/', wBits: 8, aBits: 6 }]);
  assert.deepEqual(bitRule('/layer4/=8/32'), [{ match: '/layer4/', wBits: 8, aBits: 32 }]);
  assert.deepEqual(bitRule('/conv1/=32/8'), [{ match: '/conv1/', wBits: 32, aBits: 8 }]);
  for (const bad of ['/layer4/', '/layer4/=8', '=8/8', '/layer4/=9/8', '/layer4/=8/1', '/layer4/=8/16', '/layer4/=16/8', '/layer4/=1/32', '/layer4/=a/b'])
    assert.throws(() => bitRule(bad), (e: unknown) => e instanceof InvalidArgumentError && e.message === `Expected <node-name prefix or re:regex>=<w>/<a> with bit-widths 2..8, or 32 for float, for --bits (e.g. '/layer4/=8/8') but received ${bad}`, bad);
});
